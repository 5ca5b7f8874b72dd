"""The sans-I/O parser and chunked decoder over the corpus in tests/corpus.

Each ``NAME.http`` holds raw request bytes written with escapes (``\\r\\n``); ``NAME.json`` holds
the expected requests or the expected error status with the rule it enforces. Every case is replayed
whole, byte by byte, and in random splits: the result must not depend on how TCP cut the bytes.
"""

from __future__ import annotations

import random

import pytest

from helpers import CORPUS_CASES, load_case
from prefork.http.errors import HTTPError
from prefork.http.framing import ChunkedDecoder
from prefork.http.parser import Limits, parse_head

LIMITS = Limits(max_body=1000)


class Replay:
    """Feeds pieces like a connection would: parse heads, then decode bodies, pipelining included."""

    def __init__(self) -> None:
        self.buf = b""
        self.requests: list[dict] = []
        self.head = None
        self.remaining = 0
        self.decoder: ChunkedDecoder | None = None
        self.body = b""

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            if self.head is None:
                parsed = parse_head(self.buf, LIMITS)
                if parsed is None:
                    return
                self.head, used = parsed
                self.buf = self.buf[used:]
                self.body = b""
                if self.head.chunked:
                    self.decoder = ChunkedDecoder(LIMITS.max_body, LIMITS.max_fields, LIMITS.max_field_size)
                else:
                    self.decoder, self.remaining = None, self.head.content_length
            if self.decoder is not None:
                data, used = self.decoder.decode(self.buf)
                self.buf = self.buf[used:]
                self.body += data
                if not self.decoder.done:
                    return
            else:
                take = min(self.remaining, len(self.buf))
                self.body += self.buf[:take]
                self.buf = self.buf[take:]
                self.remaining -= take
                if self.remaining:
                    return
            self._complete()

    def _complete(self) -> None:
        head = self.head
        self.requests.append(
            {
                "method": head.method,
                "path": head.path,
                "query": head.query,
                "version": head.version,
                "headers": [list(h) for h in head.headers],
                "host": head.host,
                "body": self.body.decode("latin-1"),
                "keep_alive": head.keep_alive,
                "chunked": head.chunked,
                "content_length": head.content_length,
                "expect_continue": head.expect_continue,
            }
        )
        self.head = None


def replay(raw: bytes, sizes: list[int]) -> Replay | HTTPError:
    replay = Replay()
    pos = 0
    try:
        for size in sizes:
            replay.feed(raw[pos : pos + size])
            pos += size
        replay.feed(raw[pos:])
    except HTTPError as exc:
        return exc
    return replay


def splits(raw: bytes) -> dict[str, list[int]]:
    rng = random.Random(len(raw))
    result = {"whole": [len(raw)], "bytewise": [1] * len(raw)}
    for i in range(3):
        sizes, total = [], 0
        while total < len(raw):
            sizes.append(rng.randint(1, 7))
            total += sizes[-1]
        result[f"random{i}"] = sizes
    return result


@pytest.mark.parametrize("name", CORPUS_CASES)
def test_corpus(name: str) -> None:
    raw, expected = load_case(name)
    for mode, sizes in splits(raw).items():
        result = replay(raw, sizes)
        if "error" in expected:
            assert isinstance(result, HTTPError), f"{mode}: accepted, but {expected['rule']} forbids it"
            assert int(result.status[:3]) == expected["error"], f"{mode}: {result.status} ({result.reason})"
            continue
        assert not isinstance(result, HTTPError), f"{mode}: refused with {result.status}: {result.reason}"
        assert len(result.requests) == len(expected["requests"]), mode
        for got, want in zip(result.requests, expected["requests"], strict=False):
            for key, value in want.items():
                assert got[key] == value, f"{mode}: {key}"


def test_incomplete_head_waits() -> None:
    assert parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n", Limits()) is None
    assert parse_head(b"", Limits()) is None


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
        (b"GET /" + b"a" * 5000, 414),  # before the line even ends
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 9000, 431),  # before the field ends
        (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 100 + b"\r\n", 431),
    ],
)
def test_limits(raw: bytes, status: int) -> None:
    with pytest.raises(HTTPError) as info:
        parse_head(raw, Limits())
    assert int(info.value.status[:3]) == status


def test_limits_are_configurable() -> None:
    raw = b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 150 + b"\r\n"
    head, used = parse_head(raw, Limits(max_line=8000, max_fields=200))
    assert used == len(raw) and len(head.headers) == 151
    head, _ = parse_head(raw, Limits(max_line=0, max_fields=0, max_field_size=0))
    assert head.path.startswith("/aaa")


def test_chunked_decoder_keeps_the_next_request() -> None:
    decoder = ChunkedDecoder()
    data, used = decoder.decode(b"3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n")
    assert (data, decoder.done) == (b"abc", True)
    assert used == len(b"3\r\nabc\r\n0\r\n\r\n")


def test_chunked_limit_checked_on_declared_size() -> None:
    decoder = ChunkedDecoder(max_body=10)
    with pytest.raises(HTTPError) as info:
        decoder.decode(b"b\r\n")  # 11 bytes declared; no data sent yet
    assert info.value.status.startswith("413")


def test_error_renders_its_own_response() -> None:
    raw = HTTPError("nope").render(b"Server: x\r\n")
    assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\nServer: x\r\n")
    assert b"Connection: close\r\n" in raw
