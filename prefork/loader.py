"""Import the WSGI application named on the command line: ``pkg.mod:app``, ``pkg.mod`` (then
``application``), ``pkg.mod:obj.attr`` or a factory call with literal arguments, ``pkg.mod:create()``.

Called in each worker after the fork (or in the master with --preload, later). Failures raise
``AppLoadError`` whose message is one line naming the module and the error, plus the traceback when
the application's own code raised.
"""

from __future__ import annotations

import ast
import importlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any


class AppLoadError(Exception):
    """The application could not be loaded; ``str()`` is what the operator needs to read."""


PASTE = "paste:"  # app_uri of an application from a PasteDeploy file (--paste): paste:/path/app.ini[#name]


def parse_app_uri(uri: str) -> tuple[str, ast.expr]:
    """Split ``module:expression`` and check the expression's shape without importing anything."""
    if uri.startswith(PASTE):
        return uri, ast.Constant(None)
    module, _, expr = uri.partition(":")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise AppLoadError(f"invalid application {uri!r}: expected MODULE or MODULE:NAME")
    try:
        node = ast.parse(expr or "application", mode="eval").body
    except SyntaxError:
        raise AppLoadError(f"invalid application {uri!r}: {expr!r} is not a name or call") from None
    target = node.func if isinstance(node, ast.Call) else node
    while isinstance(target, ast.Attribute):
        target = target.value
    if not isinstance(target, ast.Name):
        raise AppLoadError(f"invalid application {uri!r}: {expr!r} is not a name or call")
    if isinstance(node, ast.Call):
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            try:
                ast.literal_eval(arg)
            except ValueError:
                raise AppLoadError(f"invalid application {uri!r}: factory arguments must be literals") from None
    return module, node


def _resolve(module_obj: object, node: ast.expr, uri: str) -> object:
    if isinstance(node, ast.Name):
        if not hasattr(module_obj, node.id):
            raise AppLoadError(f"failed to find attribute {node.id!r} in {uri.partition(':')[0]!r}")
        return getattr(module_obj, node.id)
    if isinstance(node, ast.Attribute):
        return getattr(_resolve(module_obj, node.value, uri), node.attr)
    assert isinstance(node, ast.Call)
    factory: Any = _resolve(module_obj, node.func, uri)
    args = [ast.literal_eval(a) for a in node.args]
    kwargs = {str(k.arg): ast.literal_eval(k.value) for k in node.keywords}
    return factory(*args, **kwargs)


def load_app(uri: str, paste_globals: list[str] | tuple[str, ...] = ()) -> Callable:
    """Import and return the application; the current directory is on sys.path, as in gunicorn."""
    if uri.startswith(PASTE):
        return _load_paste(uri[len(PASTE) :], paste_globals)
    module_name, node = parse_app_uri(uri)
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module_obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppLoadError(f"cannot import {module_name!r}: {exc}") from None
        raise AppLoadError(_with_traceback(f"error while importing {module_name!r}: {exc!r}")) from None
    except Exception as exc:  # noqa: BLE001 - any failure of the app's import is reported as a load error
        raise AppLoadError(_with_traceback(f"error while importing {module_name!r}: {exc!r}")) from None
    try:
        app = _resolve(module_obj, node, uri)
    except AppLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the app's import is reported as a load error
        raise AppLoadError(_with_traceback(f"error while loading {uri!r}: {exc!r}")) from None
    if not callable(app):
        raise AppLoadError(f"application {uri!r} is not callable: {type(app).__name__}")
    return app


def _load_paste(spec: str, paste_globals: list[str] | tuple[str, ...]) -> Callable:
    """--paste FILE[#NAME] with PasteDeploy, its directory on sys.path as gunicorn does."""
    try:
        from paste.deploy import loadapp  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        raise AppLoadError("--paste needs the PasteDeploy package (pip install PasteDeploy)") from None
    path, _, name = spec.partition("#")
    path = os.path.abspath(path)
    sys.path.insert(0, os.path.dirname(path))
    global_conf = dict(item.split("=", 1) for item in paste_globals)
    try:
        return loadapp(f"config:{path}", name=name or None, global_conf=global_conf)
    except Exception as exc:  # noqa: BLE001 - any failure of the app's loading is reported as a load error
        raise AppLoadError(_with_traceback(f"error while loading {path!r} with PasteDeploy: {exc!r}")) from None


def _with_traceback(message: str) -> str:
    return message + "\n" + traceback.format_exc().rstrip()
