"""HTTP/1.1 behaviour of a real prefork process over real sockets (framing, keep-alive, errors)."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest

from helpers import Client, exchange, get, request, status_of

DATE_RE = re.compile(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")


def env_of(server, raw: bytes) -> dict:
    response = request(server, raw)
    assert response.status == 200, response
    return json.loads(response.body)


def test_hello_has_date_server_and_length(server):
    response = get(server, "/hello")
    assert (response.status, response.body) == (200, b"Hello, World!")
    assert response.header("Content-Length") == "13"
    assert DATE_RE.fullmatch(response.header("Date"))
    assert response.header("Server") == "prefork"


def test_keep_alive_serves_many_requests_on_one_connection(server):
    with Client(server.connect()) as client:
        pids = set()
        for _ in range(20):
            client.send(b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n")
            response = client.read_response()
            assert response.status == 200 and response.header("Connection") is None
            pids.add(response.body)
        assert len(pids) == 1


def test_pipelined_requests_answered_in_order(server):
    raw = b"".join(f"GET /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{i:02d}".encode() for i in range(10))
    with Client(server.connect()) as client:
        client.send(raw + b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        bodies = [client.read_response().body for _ in range(11)]
        assert bodies == [f"{i:02d}".encode() for i in range(10)] + [b"Hello, World!"]
        assert client.is_closed()


def test_connection_close_in_a_list_stops_pipelining(server):
    """RFC 9112 §9.6: after a request with "close", no further request on the connection is processed."""
    raw = b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: TE, close\r\n\r\nGET /pid HTTP/1.1\r\nHost: t\r\n\r\n"
    data = exchange(server, raw)
    assert data.count(b"HTTP/1.1 ") == 1
    assert b"Connection: close\r\n" in data


def test_http10_without_keep_alive_is_closed(server):
    data = exchange(server, b"GET /hello HTTP/1.0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"Hello, World!")
    assert b"Connection: close" in data


def test_http10_keep_alive_with_known_length(server):
    with Client(server.connect()) as client:
        for _ in range(2):
            client.send(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            response = client.read_response()
            assert response.header("Connection") == "keep-alive"
            assert response.body == b"Hello, World!"


def test_http10_streaming_body_is_close_delimited(server):
    data = exchange(server, b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert body == b"part0;part1;part2;"


def test_streaming_body_is_chunked_on_http11(server):
    with Client(server.connect()) as client:
        client.send(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        response = client.read_response()
        assert response.header("Transfer-Encoding") == "chunked"
        assert response.body == b"part0;part1;part2;"
        client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")  # still usable after the last chunk
        assert client.read_response().body == b"Hello, World!"


@pytest.mark.parametrize("mode", ["", "lines", "iter", "small"])
def test_chunked_request_body(server, mode):
    raw = (
        f"POST /echo?{mode} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        + b"6\r\nline1\n\r\n7;ext=1\r\nline2\nx\r\n0\r\nX-T: 1\r\n\r\n"
    )
    with Client(server.connect()) as client:
        client.send(raw)
        assert client.read_response().body == b"line1\nline2\nx"
        client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.read_response().body == b"Hello, World!"


def test_chunked_body_sent_slowly_in_pieces(server):
    with Client(server.connect()) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in (b"5\r", b"\nhel", b"lo\r\n", b"0\r\n", b"\r\n"):
            time.sleep(0.05)
            client.send(piece)
        assert client.read_response().body == b"hello"


def test_environ_contents(server):
    raw = (
        b"GET /environ-json/a%20b%2Fc?x=%20y HTTP/1.1\r\nHost: example.com:8080\r\n"
        b"X-Custom: one\r\nX-Custom: two\r\nCookie: a=1\r\nCookie: b=2\r\nContent-Type: text/x\r\n\r\n"
    )
    env = env_of(server, raw)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ-json/a b/c"
    assert env["QUERY_STRING"] == "x=%20y"
    assert env["RAW_URI"] == "/environ-json/a%20b%2Fc?x=%20y"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "8080")
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["REMOTE_PORT"].isdigit()
    assert env["HTTP_X_CUSTOM"] == "one,two"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["CONTENT_TYPE"] == "text/x" and "HTTP_CONTENT_TYPE" not in env
    assert env["wsgi.url_scheme"] == "http" and env["wsgi.input_terminated"] is True


def test_path_info_is_latin1_decoded(server):
    env = env_of(server, b"GET /environ-json/caf%C3%A9 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert env["PATH_INFO"] == "/environ-json/caf\u00c3\u00a9"  # PEP 3333: bytes as latin-1


def test_underscore_header_cannot_spoof_dash_header(server):
    raw = b"GET /environ-json HTTP/1.1\r\nHost: t\r\nX-Real-IP: 1.1.1.1\r\nX_Real_IP: 6.6.6.6\r\n\r\n"
    env = env_of(server, raw)
    assert env["HTTP_X_REAL_IP"] == "1.1.1.1"


def test_head_has_length_but_no_body(server):
    with Client(server.connect()) as client:
        client.send(b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        response = client.read_response("HEAD")
        assert response.header("Content-Length") == "13"
        client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")  # no stray body bytes in between
        assert client.read_response().body == b"Hello, World!"


def test_204_and_304_have_no_body(server):
    with Client(server.connect()) as client:
        client.send(b"GET /no-content HTTP/1.1\r\nHost: t\r\n\r\nGET /not-modified HTTP/1.1\r\nHost: t\r\n\r\n")
        first = client.read_response()
        assert first.status == 204 and first.header("Content-Length") is None
        second = client.read_response()
        assert second.status == 304 and second.header("Transfer-Encoding") is None
        client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.read_response().body == b"Hello, World!"


def test_expect_100_continue_sent_on_first_read(server):
    with Client(server.connect()) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        interim = client.read_response()
        assert interim.status == 100
        client.send(b"data")
        assert client.read_response().body == b"data"


def test_expect_100_continue_not_sent_when_app_does_not_read(server):
    with Client(server.connect()) as client:
        client.send(b"POST /no-read HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        response = client.read_response()
        assert response.status == 200 and response.body == b"did not read"
        assert response.header("Connection") == "close" or client.is_closed()


def test_unread_body_is_drained_and_connection_stays_in_sync(server):
    with Client(server.connect()) as client:
        client.send(
            b"POST /no-read HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789"
            b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        assert client.read_response().body == b"did not read"
        assert client.read_response().body == b"Hello, World!"


def test_file_wrapper_sends_file(server, payload_file):
    response = get(server, "/file")
    with open(payload_file, "rb") as f:
        expected = f.read()
    assert response.header("Content-Length") == str(len(expected))
    assert response.body == expected


def test_write_callable(server):
    assert get(server, "/write-callable").body == b"written;returned"


def test_close_is_called_on_the_iterable(server):
    close_log = server.extra["close_log"]

    def closes() -> int:
        return close_log.read_text().count("closed") if close_log.exists() else 0

    before = closes()
    assert get(server, "/closing").body == b"ab"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and closes() == before:
        time.sleep(0.02)
    assert closes() == before + 1


def test_exc_info_replaces_status_and_headers_before_sending(server):
    response = get(server, "/exc-info-replace")
    assert response.status == 503 and response.body == b"replaced"
    assert response.header("X-Second") == "yes" and response.header("X-First") is None


def test_app_exception_gives_500_and_traceback_and_worker_survives(server):
    pid_before = get(server, "/pid").body
    response = get(server, "/error")
    assert response.status == 500 and response.header("Connection") == "close"
    assert response.header("Date") and response.header("Server") == "prefork"
    server.wait_log("RuntimeError: boom from the test app")
    assert get(server, "/pid").body == pid_before


def test_exception_after_headers_sent_closes_connection(server):
    data = exchange(server, b"GET /error-after-start HTTP/1.1\r\nHost: t\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and b"first;" in data
    assert not data.endswith(b"0\r\n\r\n")  # never a clean end: the client sees the truncation
    server.wait_log("boom while streaming")


@pytest.mark.parametrize(
    "path",
    [
        "/start-twice",
        "/bad-header-crlf",
        "/bad-header-name",
        "/bad-header-latin1",
        "/bad-status",
        "/conflicting-length",
    ],
)
def test_invalid_app_responses_become_500(server, path):
    data = exchange(server, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert status_of(data) == 500
    assert b"injected" not in data and b"never" not in data


def test_short_body_closes_connection_and_logs(server):
    data = exchange(server, b"GET /short-body HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    assert data.endswith(b"\r\n\r\n12345")  # closed after the short body; pipelined request not answered
    server.wait_log("sent 5 of 10 bytes")


def test_long_body_is_truncated_to_content_length(server):
    data = exchange(server, b"GET /long-body HTTP/1.1\r\nHost: t\r\n\r\n")
    assert data.endswith(b"\r\n\r\n12345")


def test_app_connection_close_is_honoured(server):
    data = exchange(server, b"GET /connection-close HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    assert data.count(b"HTTP/1.1 200") == 1 and data.count(b"Connection: close") == 1


def test_server_errors_carry_date_and_server(server):
    data = exchange(server, b"GET / HTTP/1.1\r\n\r\n")
    assert status_of(data) == 400
    assert b"\r\nDate: " in data and b"\r\nServer: prefork\r\n" in data and b"Connection: close" in data


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000001\r\n\r\n", 413),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    ],
)
def test_limits_and_errors(server, raw, status):
    assert status_of(exchange(server, raw)) == status


def test_chunked_body_over_limit_is_413(server):
    raw = b"POST /echo-length HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    with Client(server.connect()) as client:
        # 512 KiB, then a second 512 KiB chunk announced: over the 1 MB limit before its data is sent
        client.send(raw + b"80000\r\n" + b"x" * 0x80000 + b"\r\n80000\r\n")
        response = client.read_response()
        assert response.status == 413


def test_large_upload_streams(server):
    body = b"z" * 900_000
    raw = b"POST /echo-length HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
    with Client(server.connect()) as client:
        client.send(raw + body)
        assert client.read_response().body == b"900000"


def test_body_read_timeout_gives_408(server):
    with Client(server.connect()) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        response = client.read_response()
        assert response.status == 408


def test_client_gone_mid_body_does_not_hurt_worker(server):
    pid = get(server, "/pid").body
    sock = server.connect()
    sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # RST
    assert get(server, "/pid").body == pid
