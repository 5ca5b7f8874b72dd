"""Slow and silent clients never hold a worker, and are dropped within the bound.

The module's server runs one worker (sync, then threaded) with --header-timeout 2 and --keep-alive 2.
"""

from __future__ import annotations

import socket
import time

from helpers import Client, get


def test_silent_connections_do_not_block_other_clients(server):
    silent = [server.connect() for _ in range(50)]
    try:
        started = time.monotonic()
        for _ in range(20):
            assert get(server, "/hello").status == 200
        assert time.monotonic() - started < 5  # generous: it is a liveness check, not a benchmark
    finally:
        for sock in silent:
            sock.close()


def test_partial_head_does_not_block_other_clients(server):
    with Client(server.connect()) as slow:
        slow.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n")  # head never finished
        for _ in range(5):
            assert get(server, "/hello").status == 200


def test_slowloris_gets_408_within_header_timeout(server):
    with Client(server.connect(timeout=10)) as slow:
        started = time.monotonic()
        slow.send(b"GET /hello HTTP/1.1\r\n")
        try:
            while time.monotonic() - started < 8:
                slow.send(b"X-a: b\r\n")  # one header line every 0.2 s, never the end
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = slow.read_to_close()
        elapsed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408"), data[:100]
    assert 1.5 <= elapsed < 5


def test_slow_head_that_completes_in_time_is_answered(server):
    """A head dribbling in for over a second (read in batches by the threaded worker) is served
    promptly once it is complete."""
    with Client(server.connect(timeout=10)) as slow:
        slow.send(b"GET /hello HTTP/1.1\r\n")
        for _ in range(4):
            time.sleep(0.3)
            slow.send(b"X-a: b\r\n")
        started = time.monotonic()
        slow.send(b"Host: t\r\n\r\n")
        response = slow.read_response()
        assert response.status == 200 and response.body == b"Hello, World!"
        assert time.monotonic() - started < 1.5


def test_silent_connection_is_closed_within_bound(server):
    with Client(server.connect(timeout=10)) as silent:
        started = time.monotonic()
        assert silent.is_closed(timeout=8)
        assert time.monotonic() - started < 5


def test_idle_keep_alive_connection_is_closed_after_keep_alive(server):
    with Client(server.connect(timeout=10)) as client:
        client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.read_response().status == 200
        started = time.monotonic()
        assert client.is_closed(timeout=8)
        assert 1.5 <= time.monotonic() - started < 5


def test_client_that_does_not_read_is_dropped_after_write_timeout(fresh_server):
    """A client that never reads a large response frees the worker after --write-timeout."""
    server = fresh_server("--write-timeout", "1")
    with Client(server.connect(timeout=10)) as lazy:
        lazy.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        lazy.send(b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n" * 20)
        time.sleep(0.2)
        started = time.monotonic()
        with Client(server.connect(timeout=10)) as client:
            client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            assert client.read_response().status == 200
        assert time.monotonic() - started < 8
