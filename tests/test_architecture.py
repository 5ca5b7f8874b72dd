"""Structural rules: prefork/http stays sans-I/O, dependencies point one way, the WSGI cycle exists once."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "prefork"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            prefix = "." * node.level + (node.module or "")
            names.add(prefix)
    return names


def test_http_package_is_sans_io():
    for path in (PACKAGE / "http").glob("*.py"):
        imported = imports_of(path)
        assert not imported & {"socket", "select", "selectors", "ssl", "os"}, path.name
        assert not any(name.startswith("..") or name.startswith("prefork") for name in imported), path.name


def test_arbiter_never_touches_http_or_wsgi():
    for module in ("arbiter.py", "master_state.py", "children.py", "upgrade.py", "pool.py", "plan.py"):
        imported = imports_of(PACKAGE / module)
        assert not any("http" in name or "wsgi" in name or name == ".conn" for name in imported), module


def test_the_app_is_called_in_one_place():
    callers = []
    for path in PACKAGE.rglob("*.py"):
        if "self.app(environ" in path.read_text():
            callers.append(path.name)
    assert callers == ["wsgi.py"]


def test_no_module_is_huge():
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 600, path


def test_no_class_over_250_lines():
    """Big objects are built from parts with one job each (the worker and master parts, see
    workers/state.py and master_state.py)."""
    import ast

    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno - node.lineno < 250, f"{path}: class {node.name}"


def test_default_server_leaves_heavy_modules_unimported():
    """ssl, logging.config/handlers, email and dataclasses cost ~10 MB per process (master and each
    worker); only the options that need them (--certfile, --log-config, --log-syslog) may load them."""
    import subprocess
    import sys

    heavy = ("ssl", "logging.config", "logging.handlers", "email.utils", "dataclasses", "difflib")
    code = (
        "import sys; before = set(sys.modules); "
        "import prefork.cli, prefork.arbiter, prefork.workers.sync, prefork.workers.threaded, prefork.wsgi; "
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules and m not in before))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []


def test_http_date_is_imf_fixdate():
    from email.utils import formatdate

    from prefork.http.response import http_date

    for seconds in (0, 784111777, 951782400, 1700000000, 4102444799):
        assert http_date(seconds) == formatdate(seconds, usegmt=True)
