"""From argv, the environment and the config file to one ``Settings``, remembering each value's source.

Precedence, lowest first: defaults < config file (``-c FILE``, else ``./prefork.conf.py`` if present)
< environment (``PREFORK_<NAME>``, ``PREFORK_CMD_ARGS``, and gunicorn's ``WEB_CONCURRENCY`` and
``PORT`` as defaults) < command line. A config file uses gunicorn's setting names, so a gunicorn user's
``gunicorn.conf.py`` loads unchanged: it runs with its own directory and the working directory on
``sys.path`` (as in gunicorn), ``-c python:MODULE`` names a module instead of a file, helper variables
and unknown names are warnings with a "did you mean" (errors with ``--strict-config``), and the
gunicorn settings of ``compat.py`` are accepted without effect or refused with the reason. Choices
(worker_class) are checked on the effective value only, so a file's value overridden on the command
line never matters. Runs in the master only.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shlex
import sys
from typing import Any

from .compat import ALL as COMPAT
from .compat import REFUSED, asks_for_nothing
from .loader import PASTE
from .settings import BY_NAME, SETTINGS, Setting, Settings, build_parser, env_name, json_mapping

DEFAULT_CONFIG_FILE = "prefork.conf.py"

# Values of these types are settings (or typos of settings); anything else in a config file is a helper.
_SETTING_TYPES = (str, bytes, int, float, bool, list, tuple, dict, type(None))


class ConfigError(Exception):
    """Settings that cannot be used; the message names the setting and its source."""


META = ("config", "check_config", "print_config", "strict_config")


def load(argv: list[str], environ: dict[str, str] | None = None) -> tuple[Settings, argparse.Namespace]:
    """Parse everything; returns the settings and the CLI-only switches (config, check/print/strict)
    with ``warnings``: what was accepted without effect or not understood, to log once at start."""
    environ = dict(os.environ if environ is None else environ)
    parser = build_parser()
    cli = vars(parser.parse_args(argv))
    meta = argparse.Namespace(**{k: cli.pop(k, None) for k in META})
    meta.warnings = []
    for name in [k for k in cli if k in COMPAT]:
        _compat_value(name, cli.pop(name), "the command line", meta.warnings)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def apply(layer: dict[str, Any], source: str) -> None:
        for name, value in layer.items():
            values[name] = value
            sources[name] = source

    apply(_gunicorn_environment(environ), "env")
    path = meta.config or (DEFAULT_CONFIG_FILE if os.path.exists(DEFAULT_CONFIG_FILE) else None)
    if path:
        file_values, unknown = load_file(path, meta.warnings)
        if unknown and meta.strict_config:
            raise ConfigError("; ".join(unknown) + " (--strict-config)")
        meta.warnings += unknown
        apply(file_values, f"file {path}")
    apply(_environment(environ), "env")
    if environ.get("PREFORK_CMD_ARGS"):
        extra = vars(parser.parse_args(shlex.split(environ["PREFORK_CMD_ARGS"])))
        app_from_env = extra.pop("app_uri", None)
        if app_from_env:
            extra["wsgi_app"] = app_from_env
        apply({k: v for k, v in extra.items() if k in BY_NAME}, "env PREFORK_CMD_ARGS")
    app_uri = cli.pop("app_uri", None)
    apply({k: v for k, v in cli.items() if k in BY_NAME}, "cli")
    if app_uri:
        apply({"wsgi_app": app_uri}, "cli")
    for name, value in values.items():  # choices are checked on the effective value only
        setting = BY_NAME[name]
        if setting.choices and value is not None and value not in setting.choices:
            raise ConfigError(f"{sources[name]}: {name} {value!r} is not one of {', '.join(setting.choices)}")
    app = values.get("wsgi_app")
    if values.get("paste"):  # gunicorn: --paste names the application
        app = PASTE + os.path.abspath(values["paste"])
    if not app:
        parser.error("the application (MODULE:APP) is required, on the command line or as wsgi_app")
    return Settings(values, app, sources), meta


def load_file(path: str, warnings: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Run a Python config file (or ``python:MODULE``); return its settings and the unknown names.

    Accepted-without-effect settings add to ``warnings``; refused ones raise ConfigError."""
    namespace = _run_config(path)
    values = {}
    unknown = []
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        if name in COMPAT:
            _compat_value(name, value, path, warnings)
            continue
        if name not in BY_NAME:
            if isinstance(value, _SETTING_TYPES) and not isinstance(value, type):
                unknown.append(_unknown(name, path))
            continue  # modules, helper functions and classes the file imports or defines
        try:
            values[name] = coerce(BY_NAME[name], value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: invalid value for {name!r}: {exc}") from None
    return values, unknown


def _run_config(path: str) -> dict[str, Any]:
    """gunicorn's way: the file's directory and the working directory on sys.path while it runs."""
    saved = list(sys.path)
    try:
        if path.startswith("python:"):
            import importlib

            sys.path[:0] = [os.getcwd()]
            return vars(importlib.import_module(path[len("python:") :]))
        if not os.path.exists(path):
            raise ConfigError(f"config file {path!r} not found")
        sys.path[:0] = [os.path.dirname(os.path.abspath(path)), os.getcwd()]
        return runpy.run_path(path, run_name="__config__")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the file raises is reported as a config error
        raise ConfigError(f"config file {path!r} failed: {exc!r}") from None
    finally:
        sys.path[:] = saved


def _unknown(name: str, path: str) -> str:
    import difflib  # only for a typo's suggestion

    close = difflib.get_close_matches(name, [*BY_NAME, *COMPAT], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{path}: unknown setting {name!r} ignored{hint}"


def _compat_value(name: str, value: Any, where: str, warnings: list[str]) -> None:
    """A gunicorn setting from compat.py: refuse it with the reason, or note that it has no effect."""
    entry = COMPAT[name]
    if name in REFUSED:
        if not asks_for_nothing(entry, value):
            raise ConfigError(f"{where}: setting {name!r} is not supported by prefork: {entry.reason}")
        return
    if value not in (None, False, ""):
        warnings.append(f"{where}: {name} has no effect in prefork: {entry.reason}")


def coerce(setting: Setting, value: Any) -> Any:
    """A config-file or environment value -> the setting's type, through the same validator as the CLI."""
    if setting.hook:
        if value is not None and not callable(value):
            raise TypeError(f"a hook must be a function, not {type(value).__name__}")
        return value
    if setting.flag:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(value, dict) or (isinstance(value, list | tuple) and not setting.append):
        try:
            text = json.dumps(value)
        except TypeError:  # objects inside (a logconfig_dict holding a stream): use the value itself
            if isinstance(value, dict) and setting.parse is json_mapping:
                return value
            raise
        return setting.parse(text)
    if setting.append:
        items = value.split() if isinstance(value, str) else list(value)
        return [setting.parse(str(item)) for item in items]
    if value is None:
        return None
    return setting.parse(str(value))


def _environment(environ: dict[str, str]) -> dict[str, Any]:
    values = {}
    for setting in SETTINGS:
        raw = None if setting.hook else environ.get(env_name(setting))
        if raw is not None:
            try:
                values[setting.name] = coerce(setting, raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{env_name(setting)}: invalid value: {exc}") from None
    return values


def _gunicorn_environment(environ: dict[str, str]) -> dict[str, Any]:
    """gunicorn's conventions: WEB_CONCURRENCY workers, PORT to bind on all interfaces,
    FORWARDED_ALLOW_IPS."""
    values: dict[str, Any] = {}
    try:
        if environ.get("WEB_CONCURRENCY"):
            values["workers"] = BY_NAME["workers"].parse(environ["WEB_CONCURRENCY"])
        if environ.get("PORT"):
            values["bind"] = [f"0.0.0.0:{int(environ['PORT'])}"]
        if environ.get("FORWARDED_ALLOW_IPS"):
            values["forwarded_allow_ips"] = environ["FORWARDED_ALLOW_IPS"]
    except ValueError as exc:
        raise ConfigError(f"WEB_CONCURRENCY/PORT: {exc}") from None
    return values


def describe(settings: Settings) -> str:
    """--print-config: every effective value with its source."""
    lines = []
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        lines.append(f"{setting.name:26} = {value!r:40} # {settings.sources.get(setting.name, 'default')}")
    return "\n".join(lines)
