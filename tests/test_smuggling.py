"""Request smuggling and hostile input against a real server.

Every ambiguous message is refused with a 4xx/5xx and the connection is closed, so bytes that a
front proxy might have framed differently are never read as a second request. Each case names the
RFC 9112 (or 9110) rule that makes it ambiguous or invalid.
"""

from __future__ import annotations

import re

import pytest

from helpers import CORPUS_CASES, exchange, get, load_case

SMUGGLED = b"GET /pid HTTP/1.1\r\nHost: t\r\n\r\n"
STATUS_LINE = re.compile(rb"(?:^|\n)HTTP/1\.1 \d{3} ")

# The corpus cases that are invalid (tests/corpus, among them the smuggle_* attempts: CL.TE, TE.CL,
# obfuscated codings, obs-fold, duplicate lengths, bare CR/LF, bad chunk syntax...), replayed through a
# real server with a second request behind each; test_parser replays the same files byte-split through
# the parser. The body-limit cases assume a 1000-byte limit and are tested in test_http instead.
INVALID = [name for name in CORPUS_CASES if "error" in load_case(name)[1] and "too_large" not in name]


def assert_refused_and_closed(server, raw: bytes, status: int) -> None:
    data = exchange(server, raw + SMUGGLED)
    assert data.startswith(b"HTTP/1.1 %d " % status), data[:300]
    assert len(STATUS_LINE.findall(data)) == 1, "a second (smuggled) request was answered"


@pytest.mark.parametrize("name", INVALID)
def test_corpus_invalid_requests_are_refused(server, name):
    raw, expected = load_case(name)
    assert_refused_and_closed(server, raw, expected["error"])


def test_valid_body_is_never_read_as_a_request(server):
    """A body that looks like a request is the body: Content-Length decides (RFC 9112 §6.3 step 6)."""
    body = SMUGGLED
    raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    data = exchange(server, raw + body)
    assert len(STATUS_LINE.findall(data)) == 1 and data.endswith(body)


def test_worker_survives_garbage(server):
    pid = get(server, "/pid").body
    for junk in (
        b"\x00" * 100,
        b"\xff\xfe" * 500 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"\x80" * 300 + b"\r\n\r\n",
        b"\r\n" * 3000,
        b"A" * 70000,
    ):
        exchange(server, junk, timeout=5)
    assert get(server, "/pid").body == pid
