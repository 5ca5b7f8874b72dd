"""Fast unit tests without server processes: the scoreboard (shared memory between master and
workers) and ``wsgi.input`` (body.py) over a real socket pair."""

from __future__ import annotations

import socket

import pytest

from prefork import scoreboard as sb
from prefork.body import DRAIN_LIMIT, ChunkedBody, Input, LengthBody
from prefork.conn import Connection
from prefork.http.framing import ChunkedDecoder

# -- scoreboard ---------------------------------------------------------------------------------------


def test_a_slot_starts_booting_and_reports_what_its_worker_writes():
    board = sb.Scoreboard(4, threads=2)
    board.reset(1, 5.0)
    assert board.read(1) == (5.0, sb.BOOTING, 0)
    board.beat(1, 7.5)
    board.set_state(1, sb.READY)
    board.count_request(1, 42)
    assert board.read(1) == (7.5, sb.READY, 42)
    assert board.read(0) == (0.0, 0, 0)  # neighbours untouched


def test_messages_round_trip_and_are_bounded():
    board = sb.Scoreboard(2)
    board.reset(0, 0.0)
    board.set_message(0, "ImportError: no module named 'app' — é")
    assert board.message(0) == "ImportError: no module named 'app' — é"
    board.set_message(0, "x" * 10000)
    assert board.message(0) == "x" * 4096
    assert board.read(0)[1] == sb.BOOTING  # the message never spills into the header


def test_running_requests_per_thread():
    board = sb.Scoreboard(2, threads=3)
    board.reset(1, 0.0)
    first, third = board.entry(1, 0), board.entry(1, 2)
    first.started(10.0, b"GET /a")
    third.started(11.0, b"POST /b")
    assert board.running(1) == [(10.0, "GET /a"), (11.0, "POST /b")]
    first.finished()
    assert board.running(1) == [(11.0, "POST /b")]
    first.started(12.0, b"GET /" + b"x" * 500)  # long lines are cut, never overflow
    assert board.running(1)[0][1] == "GET /" + "x" * 113
    assert board.running(0) == []


def test_sibling_loads_count_only_ready_workers_with_a_free_thread():
    board = sb.Scoreboard(5, threads=1)
    for index, (state, connections) in enumerate(
        [(sb.READY, 3), (sb.READY, 7), (sb.BOOTING, 0), (sb.RECYCLE, 2), (sb.DRAINING, 1)]
    ):
        board.reset(index, 0.0)
        board.set_state(index, state)
        board.set_connections(index, connections)
    assert sorted(board.sibling_loads(0)) == [2, 7]  # not itself, not booting or draining
    board.entry(1, 0).started(1.0, b"GET /slow")  # its only thread is busy
    assert board.sibling_loads(0) == [2]
    board.release(3)
    assert board.sibling_loads(0) == []


def test_requests_from_the_master_and_handoff_counts():
    board = sb.Scoreboard(2)
    board.reset(0, 0.0)
    assert board.asked(0) == 0
    board.ask(0, sb.EVACUATE)
    assert board.asked(0) == sb.EVACUATE and board.read(0)[1] == sb.BOOTING
    board.count_handoffs(0, 5, 2)
    assert board.handoffs(0) == (5, 2)
    board.reset(0, 1.0)
    assert board.asked(0) == 0 and board.handoffs(0) == (0, 0)


# -- wsgi.input ----------------------------------------------------------------------------------------


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    server.settimeout(2)
    yield Connection(server, {}, 0.0), client
    server.close()
    client.close()


def test_length_body_never_reads_past_its_end(pair):
    conn, client = pair
    conn.buf = b"hel"
    client.sendall(b"loworld" + b"GET /next HTTP/1.1\r\n")  # the rest of the body, then a next request
    body = Input(LengthBody(conn, 10), None)
    assert body.read(2) == b"he"
    assert body.read() == b"lloworld"
    assert body.read() == b"" and body.done
    assert conn.buf == b"" and client.send(b"!") and conn.sock.recv(100) == b"GET /next HTTP/1.1\r\n!"


def test_length_body_takes_only_its_bytes_from_the_buffer(pair):
    conn, _ = pair
    conn.buf = b"helloGET /next HTTP/1.1\r\n"
    assert Input(LengthBody(conn, 5), None).read() == b"hello"
    assert conn.buf == b"GET /next HTTP/1.1\r\n"


def test_readline_readlines_and_iteration(pair):
    conn, client = pair
    data = b"one\ntwo\nthree\nlast"
    client.sendall(data)
    body = Input(LengthBody(conn, len(data)), None)
    assert body.readline() == b"one\n"
    assert body.readline(2) == b"tw"
    assert body.readline() == b"o\n"
    assert list(body) == [b"three\n", b"last"]
    client.sendall(data)
    again = Input(LengthBody(conn, len(data)), None)
    assert again.readlines(5) == [b"one\n", b"two\n"]  # stops once the hint is reached
    assert again.read() == b"three\nlast"


def test_the_first_read_sends_100_continue_once(pair):
    conn, client = pair
    sent = []
    client.sendall(b"abcd")
    body = Input(LengthBody(conn, 4), lambda: sent.append("continue"))
    assert not body.can_finish()  # the client waits for 100 Continue: say close in the head
    assert body.read(2) == b"ab" and body.read(2) == b"cd"
    assert sent == ["continue"] and body.can_finish() and body.finish()


def test_finish_drains_a_small_unread_body_and_gives_up_on_a_large_one(pair):
    conn, client = pair
    client.sendall(b"x" * 1000)
    assert Input(LengthBody(conn, 1000), None).finish()
    assert conn.buf == b""
    large = Input(LengthBody(conn, DRAIN_LIMIT + 1), None)
    assert not large.can_finish()
    unanswered = Input(LengthBody(conn, 10), lambda: None)
    assert not unanswered.finish()  # it may never send the body: do not wait for it


def test_chunked_body_across_buffer_and_socket(pair):
    conn, client = pair
    conn.buf = b"5\r\nhello\r\n"
    client.sendall(b"6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
    body = Input(ChunkedBody(conn, ChunkedDecoder(1 << 20, 100, 8190)), None)
    assert body.read() == b"hello world"
    assert body.done and bytes(conn.buf).startswith(b"GET / HTTP/1.1")
