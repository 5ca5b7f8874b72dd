"""Shared fixtures: a running prefork per test module and worker class (``server``), a fresh one per
test (``fresh_server``), and the markers (``needs_root``)."""

from __future__ import annotations

import os

import pytest

from helpers import start_server

# Every test of the module-scoped ``server`` runs once per worker class.
WORKER_CLASSES = {"sync": ["-k", "sync"], "threaded": ["-k", "threaded", "--threads", "4"]}


@pytest.fixture(scope="session")
def payload_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("files") / "payload.bin"
    path.write_bytes(bytes(range(256)) * 1024 + b"tail")  # 256 KiB + 4
    return str(path)


@pytest.fixture(scope="module", params=list(WORKER_CLASSES))
def server(request, tmp_path_factory, payload_file):
    """One server for a module's tests: 1 worker, short timeouts so timeout tests stay quick."""
    tmp = tmp_path_factory.mktemp("server")
    close_log = tmp / "close.log"
    srv = start_server(
        tmp,
        *WORKER_CLASSES[request.param],
        "--keep-alive",
        "2",
        "--header-timeout",
        "2",
        "--read-timeout",
        "2",
        "--limit-request-body",
        "1000000",
        env={"PREFORK_TEST_FILE": payload_file, "PREFORK_TEST_CLOSE_LOG": str(close_log)},
    )
    srv.extra["close_log"] = close_log
    srv.extra["worker_class"] = request.param
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path, payload_file):
    """A server for one test, started with extra arguments: ``fresh_server("-w", "2")``."""
    started = []

    def start(*args, **kwargs):
        env = kwargs.pop("env", {})
        env.setdefault("PREFORK_TEST_FILE", payload_file)
        env.setdefault("PREFORK_TEST_CLOSE_LOG", str(tmp_path / "close.log"))
        srv = start_server(tmp_path, *args, env=env, **kwargs)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def pytest_configure(config):
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.needs_root`` tests are skipped, with the reason, unless the suite runs as root."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if item.get_closest_marker("needs_root"):
            item.add_marker(skip)
