"""Response framing as a pure function (http/response.py ``frame``): a table over the cases RFC 9112
§6 and RFC 9110 §6.4.1/§8.6 distinguish, without a socket."""

from __future__ import annotations

import pytest

from prefork.http.response import SERVER_HEADER, app_head, frame

DATE = b"Date: Wed, 02 Dec 2026 12:00:00 GMT\r\n"
CL = "Content-Length"

# (status, app headers, body length the server knows, HEAD?, HTTP/1.1?, keep-alive allowed?)
#   -> (skip_body, length, chunked, keep_alive, framing lines in the head)
CASES = [
    # known length: Content-Length, connection stays open
    ("200 OK", [], 5, False, True, True, (False, 5, False, True, [b"Content-Length: 5"])),
    ("200 OK", [(CL, "3")], None, False, True, True, (False, 3, False, True, [b"Content-Length: 3"])),
    ("200 OK", [(CL, "3")], 5, False, True, True, (False, 3, False, True, [b"Content-Length: 3"])),
    # unknown length: chunked on HTTP/1.1, close-delimited on HTTP/1.0
    ("200 OK", [], None, False, True, True, (False, None, True, True, [b"Transfer-Encoding: chunked"])),
    ("200 OK", [], None, False, False, True, (False, None, False, False, [b"Connection: close"])),
    # HTTP/1.0 kept alive says so
    ("200 OK", [], 2, False, False, True, (False, 2, False, True, [b"Content-Length: 2", b"Connection: keep-alive"])),
    # HEAD: no body, but the length of the GET response
    ("200 OK", [], 7, True, True, True, (True, None, False, True, [b"Content-Length: 7"])),
    ("200 OK", [], None, True, True, True, (True, None, False, True, [])),
    # 204 and 1xx never carry Content-Length; 1xx ends the exchange here
    ("204 No Content", [], 0, False, True, True, (True, None, False, True, [])),
    ("101 Switching Protocols", [], 0, False, True, True, (True, None, False, False, [b"Connection: close"])),
    # 304 keeps the representation's length, sends no body
    ("304 Not Modified", [(CL, "10")], 0, False, True, True, (True, None, False, True, [b"Content-Length: 10"])),
    # the application, the server or the request body says close
    (
        "200 OK",
        [("Connection", "close")],
        1,
        False,
        True,
        True,
        (False, 1, False, False, [b"Content-Length: 1", b"Connection: close"]),
    ),
    ("200 OK", [], 1, False, True, False, (False, 1, False, False, [b"Content-Length: 1", b"Connection: close"])),
    (
        "200 OK",
        [],
        None,
        False,
        True,
        False,
        (False, None, True, False, [b"Transfer-Encoding: chunked", b"Connection: close"]),
    ),
]


@pytest.mark.parametrize("status, headers, body_length, is_head, http11, keep_alive, expected", CASES)
def test_frame_table(status, headers, body_length, is_head, http11, keep_alive, expected):
    head, *framing = frame(app_head(status, headers), body_length, is_head, http11, keep_alive, DATE)
    skip_body, length, chunked, keep, lines = expected
    assert framing == [skip_body, length, chunked, keep]
    assert head.startswith(b"HTTP/1.1 " + status.encode() + b"\r\n" + DATE + SERVER_HEADER)
    assert head.endswith(b"\r\n\r\n")
    framing_names = (b"content-length", b"transfer-encoding", b"connection")
    found = [line for line in head.split(b"\r\n") if line.split(b":")[0].lower() in framing_names]
    assert found == lines


def test_frame_leaves_out_date_and_server_the_application_sent():
    app = app_head("200 OK", [("Date", "Thu, 01 Jan 1970 00:00:00 GMT"), ("Server", "mine")])
    head, *_ = frame(app, 0, False, True, True, DATE)
    assert DATE not in head and SERVER_HEADER not in head
    assert head.count(b"Date:") == 1 and b"Server: mine\r\n" in head
