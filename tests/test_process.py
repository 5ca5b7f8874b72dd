"""The master process: binding, signals, respawning, boot failures, command-line forms."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers import (
    APPS,
    ROOT,
    Client,
    background_get,
    child_pids,
    eventually,
    free_port,
    get,
    is_running,
    run_until_exit,
    served_by,
    wait_exit,
)


def test_term_is_graceful(fresh_server):
    server = fresh_server("-w", "2", "--graceful-timeout", "10")
    workers = child_pids(server.pid)
    assert len(workers) == 2
    pending = background_get(server, "/sleep?1.5")
    server.wait_started()
    server.signal(signal.SIGTERM)
    pending["thread"].join(10)
    assert pending["response"].status == 200 and pending["response"].body == b"slept"
    assert wait_exit(server, 10) == 0
    assert not any(is_running(pid) for pid in workers)


@pytest.mark.parametrize("kind", [(), ("-k", "threaded", "--threads", "2")], ids=["sync", "threaded"])
def test_term_answers_the_next_request_of_a_kept_alive_connection(fresh_server, kind):
    """Closing an idle kept-alive connection at once would race with a client already sending on it
    (clients such as python-requests do not retry); the draining worker answers that request with
    Connection: close instead, and closes a connection that stays idle at the keep-alive timeout."""
    server = fresh_server(*kind, "--keep-alive", "2", "--graceful-timeout", "10")
    with Client(server.connect()) as idle, Client(server.connect()) as reused:
        for client in (idle, reused):
            client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            assert client.read_response().header("Connection") is None
        server.signal(signal.SIGTERM)
        server.wait_log("stopping gracefully")
        reused.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        response = reused.read_response()
        assert response.status == 200 and response.header("Connection") == "close"
        assert reused.is_closed(timeout=3)
        assert idle.is_closed(timeout=4)
    assert wait_exit(server, 10) == 0


def test_term_kills_requests_past_graceful_timeout(fresh_server):
    server = fresh_server("--graceful-timeout", "1")
    pending = background_get(server, "/sleep?30")
    server.wait_started()
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    assert wait_exit(server, 10) == 0
    assert time.monotonic() - started < 5
    pending["thread"].join(5)
    assert "error" in pending


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_int_and_quit_are_fast(fresh_server, sig):
    server = fresh_server("--graceful-timeout", "20")
    pending = background_get(server, "/sleep?30")
    server.wait_started()
    started = time.monotonic()
    server.signal(sig)
    assert wait_exit(server, 10) == 0
    assert time.monotonic() - started < 3
    pending["thread"].join(5)
    assert "error" in pending


def test_killed_worker_is_replaced(fresh_server):
    server = fresh_server("-w", "2")
    before = child_pids(server.pid)
    victim = int(get(server, "/pid").body)
    os.kill(victim, signal.SIGKILL)
    eventually(lambda: len(child_pids(server.pid) - {victim}) == 2, 10, "a replacement worker")
    assert before - {victim} <= child_pids(server.pid)
    server.wait_log("was killed by SIGKILL from outside prefork")
    assert get(server, "/hello").status == 200


def test_crashing_worker_is_replaced(fresh_server):
    server = fresh_server()
    pid = int(get(server, "/pid").body)
    with Client(server.connect()) as client:
        client.send(b"GET /crash-worker HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.is_closed()
    server.wait_log("crashed with exit code 1")
    eventually(lambda: served_by(server) not in (None, pid), 10, "a replacement worker")


def test_hung_worker_is_killed_after_timeout(fresh_server):
    server = fresh_server("--timeout", "2")
    pid = int(get(server, "/pid").body)
    pending = background_get(server, "/sleep?60")
    server.wait_log("WORKER TIMEOUT", timeout=10)
    pending["thread"].join(5)
    assert "error" in pending
    assert int(get(server, "/pid").body) != pid


def test_unimportable_app_exits_with_one_clear_line(tmp_path):
    code, log = run_until_exit(tmp_path, "-w", "4", app="no_such_module:app")
    assert code == 3
    errors = [line for line in log.splitlines() if "no_such_module" in line]
    assert len(errors) == 1 and "[ERROR]" in errors[0] and "No module named" in errors[0], log


def test_app_raising_at_import_reports_traceback(tmp_path):
    code, log = run_until_exit(tmp_path, app="broken_import:app")
    assert code == 3
    assert "broken_import" in log and "this module fails at import time" in log and "Traceback" in log


@pytest.mark.parametrize(
    ("app", "message"),
    [("factory:missing", "failed to find attribute 'missing'"), ("factory:not_callable", "is not callable")],
)
def test_bad_app_attribute(tmp_path, app, message):
    code, log = run_until_exit(tmp_path, app=app)
    assert code == 3 and message in log


@pytest.mark.parametrize(
    ("app", "body"),
    [
        ("factory", b"default!"),
        ("factory:create_app()", b"hi!"),
        ("factory:create_app('hello', punctuation='?')", b"hello?"),
    ],
)
def test_app_uri_forms(fresh_server, app, body):
    server = fresh_server(app=app)
    assert get(server, "/").body == body


def test_unix_socket_stale_file_replaced_and_removed(fresh_server, tmp_path):
    path = str(tmp_path / "prefork.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)  # a socket file nobody listens on
    stale.close()
    server = fresh_server(bind=f"unix:{path}")
    assert get(server, "/hello").body == b"Hello, World!"
    env_raw = get(server, "/environ-json").body
    assert b'"REMOTE_ADDR": ""' in env_raw
    server.signal(signal.SIGTERM)
    assert wait_exit(server, 10) == 0
    assert not os.path.exists(path)


def test_unix_socket_in_use_is_refused(fresh_server, tmp_path):
    path = str(tmp_path / "busy.sock")
    fresh_server(bind=f"unix:{path}")
    code, log = run_until_exit(tmp_path, bind=f"unix:{path}")
    assert code == 1 and "another server is listening" in log


def test_ipv6_and_several_binds(fresh_server):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    port6 = free_port()
    server = fresh_server("-b", f"[::1]:{port6}")
    assert get(server, "/hello").status == 200
    with socket.create_connection(("::1", port6), timeout=5) as sock:
        client = Client(sock)
        client.send(b"GET /environ-json HTTP/1.1\r\nHost: [::1]\r\n\r\n")
        body = client.read_response().body
    assert b'"REMOTE_ADDR": "::1"' in body and b'"SERVER_NAME": "[::1]"' in body


def test_address_in_use_is_a_clear_error(fresh_server, tmp_path):
    server = fresh_server()
    code, log = run_until_exit(tmp_path, bind=f"127.0.0.1:{server.port}")
    assert code == 1 and "cannot listen on 127.0.0.1" in log


def test_console_script_and_help():
    out = subprocess.run([sys.executable, "-m", "prefork", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for flag in (
        "--workers",
        "--bind",
        "--worker-class",
        "--timeout",
        "--graceful-timeout",
        "--keep-alive",
        "--log-level",
        "--access-logfile",
        "--error-logfile",
        "--limit-request-line",
        "--limit-request-fields",
        "--limit-request-field_size",
        "--name",
        "--backlog",
    ):
        assert flag in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "prefork", "-w", "0", "x:app"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=APPS),
    )
    assert bad.returncode == 2 and "must be at least 1" in bad.stderr


def test_workers_get_process_titles(fresh_server):
    pytest.importorskip("setproctitle")
    server = fresh_server("-n", "myapp")
    with open(f"/proc/{server.pid}/cmdline", "rb") as f:
        assert f.read().startswith(b"prefork: master [myapp]")


def test_parent_death_signal_reaches_an_orphaned_child():
    """prctl(PR_SET_PDEATHSIG) through ctypes: the child dies with its parent, no polling involved."""
    code = (
        "import os, signal, time\n"
        "from prefork.process import set_parent_death_signal\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    set_parent_death_signal(signal.SIGKILL)\n"
        "    os.write(w, b'x')\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "os.read(r, 1)\n"
        "print(pid, flush=True)\n"
    )
    child = int(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=10, cwd=ROOT, check=True
        ).stdout
    )
    try:
        eventually(lambda: not is_running(child), 5, "the orphaned child to exit")
    finally:
        if is_running(child):
            os.kill(child, signal.SIGKILL)
