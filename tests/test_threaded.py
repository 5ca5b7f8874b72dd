"""The threaded worker: concurrency, back-pressure, request timeouts, graceful stop, liveness.

The HTTP behaviour tests (test_http, test_smuggling, test_slow_clients) already run against it
through the parametrised ``server`` fixture; these are the threaded-only properties.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time

import pytest

from helpers import Client, background_get, child_pids, eventually, get, served_by, wait_exit


def concurrent_gets(server, path: str, count: int) -> list:
    pending = [background_get(server, path) for _ in range(count)]
    for item in pending:
        item["thread"].join(30)
    return pending


def test_concurrent_slow_requests_overlap(fresh_server):
    server = fresh_server("-k", "threaded", "--threads", "4")
    started = time.monotonic()
    results = concurrent_gets(server, "/sleep?1", 4)
    elapsed = time.monotonic() - started
    assert all(r["response"].body == b"slept" for r in results)
    assert elapsed < 1.9  # four 1-second requests in about one request's time


def test_fast_requests_are_served_inline_by_one_thread(fresh_server):
    """An app that does not block is served by the thread holding the loop, as the sync worker would:
    no hand-over between threads per request (relay.py)."""
    server = fresh_server("-k", "threaded", "--threads", "4")
    clients = [Client(server.connect()) for _ in range(4)]
    names = []
    try:
        for n in range(200):
            clients[n % 4].send(b"GET /thread HTTP/1.1\r\nHost: x\r\n\r\n")
            names.append(clients[n % 4].read_response().body)
    finally:
        for client in clients:
            client.sock.close()
    most = max(set(names), key=names.count)
    assert most.startswith(b"request-")
    assert names.count(most) >= 180, {name: names.count(name) for name in set(names)}


def test_blocking_requests_spread_over_threads(fresh_server):
    """Requests that block (sleep, I/O) send the worker to pool mode: they run side by side."""
    server = fresh_server("-k", "threaded", "--threads", "4")
    started = time.monotonic()
    results = concurrent_gets(server, "/thread?0.4", 8)
    elapsed = time.monotonic() - started
    names = {r["response"].body for r in results}
    assert len(names) >= 3, names
    assert all(name.startswith(b"request-") for name in names)
    assert elapsed < 1.8  # 8 x 0.4 s on 4 threads: about 0.8 s side by side, 3.2 s one by one


def test_gthread_alias_and_threads_select_threaded(fresh_server):
    for args in (["-k", "gthread", "--threads", "2"], ["--threads", "2"]):
        server = fresh_server(*args)
        env = json.loads(get(server, "/environ-json").body)
        assert env["wsgi.multithread"] is True
        server.stop()
    sync = fresh_server()
    assert json.loads(get(sync, "/environ-json").body)["wsgi.multithread"] is False


def test_request_timeout_logs_stack_and_recycles_worker(fresh_server):
    server = fresh_server("-k", "threaded", "--threads", "2", "--request-timeout", "1", "--graceful-timeout", "1")
    old = int(get(server, "/pid").body)
    background_get(server, "/sleep?60")
    log = server.wait_log("Request timeout: GET /sleep?60", timeout=10)
    assert "time.sleep(" in log or "in sleep" in log  # the stuck thread's stack
    eventually(lambda: served_by(server) not in (None, old), 10, "a replacement worker")


def test_other_threads_finish_while_worker_recycles(fresh_server):
    server = fresh_server("-k", "threaded", "--threads", "3", "--request-timeout", "1", "--graceful-timeout", "5")
    background_get(server, "/sleep?60")
    server.wait_started()
    survivor = background_get(server, "/sleep?2")
    server.wait_log("Request timeout", timeout=10)
    survivor["thread"].join(10)
    assert survivor["response"].body == b"slept"


def test_all_threads_stuck_is_a_silent_worker(fresh_server):
    """The master's --timeout sees a worker whose every thread is stuck, though its loop runs."""
    server = fresh_server("-k", "threaded", "--threads", "2", "--timeout", "2")
    old = set(child_pids(server.pid))
    for _ in range(2):
        background_get(server, "/sleep?60")
    server.wait_log("WORKER TIMEOUT", timeout=10)
    eventually(lambda: child_pids(server.pid) and not child_pids(server.pid) & old, 10, "a new worker only")


def test_one_stuck_thread_is_not_a_silent_worker(fresh_server):
    server = fresh_server("-k", "threaded", "--threads", "2", "--timeout", "2")
    background_get(server, "/sleep?5")
    server.wait_started()
    time.sleep(3.5)  # longer than --timeout 2 on purpose: what is checked is that nothing happens
    assert get(server, "/hello").status == 200
    assert "WORKER TIMEOUT" not in server.log()


def test_term_completes_in_flight_requests(fresh_server):
    server = fresh_server("-k", "threaded", "--threads", "5", "--graceful-timeout", "10")
    pending = [background_get(server, "/sleep?1.5") for _ in range(4)]  # the fifth thread stays free
    server.wait_started(4)
    server.signal(signal.SIGTERM)
    for item in pending:
        item["thread"].join(10)
        assert item["response"].body == b"slept"
        assert item["response"].header("Connection") == "close"
    assert wait_exit(server, 10) == 0


def test_worker_connections_caps_accepting_when_no_connection_is_idle(fresh_server):
    server = fresh_server("-k", "threaded", "--threads", "2", "--worker-connections", "2", "--keep-alive", "30")
    held = [Client(server.connect()) for _ in range(2)]
    for client in held:  # each in the middle of a request head: nothing to reclaim
        client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n")
    time.sleep(0.3)
    third = Client(server.connect(timeout=10))
    third.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    third.sock.settimeout(1)
    try:
        third.sock.recv(1)
        raise AssertionError("a third connection was served past --worker-connections 2")
    except TimeoutError:
        pass
    held[0].sock.close()
    third.sock.settimeout(5)
    assert third.read_response().status == 200
    for client in [*held[1:], third]:
        client.sock.close()


@pytest.mark.parametrize("worker_class", ["sync", "threaded"])
def test_worker_connections_reclaims_the_longest_idle_keepalive(fresh_server, worker_class):
    server = fresh_server("-k", worker_class, "--worker-connections", "2", "--keep-alive", "30")
    held = [Client(server.connect()) for _ in range(2)]
    for client in held:
        client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        client.read_response()
        time.sleep(0.05)  # held[0] is idle the longest
    third = Client(server.connect(timeout=5))
    third.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    assert third.read_response().status == 200
    assert held[0].is_closed(timeout=5)  # closed cleanly between requests to make room
    held[1].send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    assert held[1].read_response().status == 200
    for client in [*held, third]:
        client.sock.close()


def test_access_log_lines_never_interleave(fresh_server, tmp_path):
    path = tmp_path / "access.log"
    server = fresh_server(
        "-k",
        "threaded",
        "--threads",
        "8",
        "--access-logfile",
        str(path),
        "--access-logformat",
        "%(s)s %(U)s %({x-n}i)s",
    )

    def worker(n: int) -> None:
        with Client(server.connect()) as client:
            for i in range(25):
                client.send(f"GET /hello/{n}/{i} HTTP/1.1\r\nHost: t\r\nX-N: {'x' * 200}{n}\r\n\r\n".encode())
                client.read_response()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and path.read_text().count("\n") < 201:
        time.sleep(0.05)
    lines = path.read_text().splitlines()[1:]  # the first line is the start-up probe's request
    assert len(lines) == 200
    assert all(re.fullmatch(r"200 /hello/(\d)/\d+ x{200}\1", line) for line in lines)
