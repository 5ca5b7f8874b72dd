"""Request smuggling and hostile input against a real server.

Every ambiguous message is refused with a 4xx/5xx and the connection is closed, so bytes that a
front proxy might have framed differently are never read as a second request. Each case names the
RFC 9112 (or 9110) rule that makes it ambiguous or invalid.
"""

from __future__ import annotations

import re

import pytest

from helpers import exchange, get
from test_parser import CASES, load

SMUGGLED = b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n"
STATUS_LINE = re.compile(rb"(?:^|\n)HTTP/1\.1 \d{3} ")

# The corpus cases that are invalid, replayed through a real server (the body-limit cases assume
# a 1000-byte limit and are tested in test_http with the server's own limit).
INVALID = [name for name in CASES if "error" in load(name)[1] and "too_large" not in name]


def assert_refused_and_closed(server, raw: bytes, status: int) -> None:
    data = exchange(server, raw + SMUGGLED)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:300]
    assert len(STATUS_LINE.findall(data)) == 1, "a second (smuggled) request was answered"


@pytest.mark.parametrize("name", INVALID)
def test_corpus_invalid_requests_are_refused(server, name):
    raw, expected = load(name)
    assert_refused_and_closed(server, raw, expected["error"])


SMUGGLING_CASES = {
    # RFC 9112 §6.3 step 3: TE and CL together is the CL.TE / TE.CL vector; reject, never choose.
    "cl_te": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400),
    "te_cl": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400),
    # RFC 9112 §6.3 step 4: a final coding other than chunked leaves the length unknowable.
    "te_obfuscated_xchunked": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    "te_two_lines_second_bogus": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n", 400),
    "te_quoted": (b'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n', 400),
    # RFC 9112 §5.1: no whitespace between field name and colon.
    "te_space_before_colon": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400),
    "cl_space_before_colon": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 4\r\n\r\nabcd", 400),
    # RFC 9112 §5.2: obs-fold could hide a TE from one parser and not another.
    "te_obs_fold": (b"POST / HTTP/1.1\r\nHost: t\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # RFC 9110 §8.6 and RFC 9112 §6.3 step 5: a list or duplicate Content-Length.
    "cl_duplicate": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 33\r\n\r\n", 400),
    "cl_comma_list": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0, 33\r\n\r\n", 400),
    # RFC 9112 §2.2: a bare CR or LF inside the head is not a line terminator we accept.
    "bare_cr_te": (b"POST / HTTP/1.1\r\nHost: t\r\nX: a\rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "bare_lf_te": (b"POST / HTTP/1.1\r\nHost: t\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing.
    "te_http10": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    # RFC 9112 §7.1: chunk sizes are plain hex; anything else may be read differently upstream.
    "chunk_size_leading_space": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n 2\r\nab\r\n0\r\n\r\n", 400),
    "chunk_size_0x": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n0\r\n\r\n", 400),
    "chunk_data_longer_than_size": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n", 400),
    "chunk_ext_with_lf": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2;x\nab\r\n0\r\n\r\n", 400),
    # RFC 9112 §7.1.2: trailer lines follow header syntax.
    "trailer_obs_fold": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n", 400),
    # RFC 9112 §3.2: one Host, valid.
    "two_hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    # RFC 9112 §3: exactly one SP; a NUL or control in the target ends it early in other parsers.
    "nul_in_target": (b"GET /a\x00b HTTP/1.1\r\nHost: t\r\n\r\n", 400),
}


@pytest.mark.parametrize("name", sorted(SMUGGLING_CASES))
def test_smuggling_attempt_is_refused(server, name):
    raw, status = SMUGGLING_CASES[name]
    assert_refused_and_closed(server, raw, status)


def test_valid_body_is_never_read_as_a_request(server):
    """A body that looks like a request is the body: Content-Length decides (RFC 9112 §6.3 step 6)."""
    body = SMUGGLED
    raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    data = exchange(server, raw + body)
    assert len(STATUS_LINE.findall(data)) == 1 and data.endswith(body)


def test_worker_survives_garbage(server):
    pid = get(server, "/pid").body
    for junk in (b"\x00" * 100, b"\xff\xfe" * 500 + b"\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"\x80" * 300 + b"\r\n\r\n",
                 b"\r\n" * 3000, b"A" * 70000):
        exchange(server, junk, timeout=5)
    assert get(server, "/pid").body == pid
