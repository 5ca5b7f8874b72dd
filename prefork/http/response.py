"""Response serialisation: status line, header block, Date, chunked encoding (RFC 9112 §4, §7).

Rules of this file: pure functions and small caches; callers own the socket. Everything an
application hands us is validated here before a byte of it is written: an invalid name, a CR/LF/NUL
in a value, a non-latin-1 character or a conflicting Content-Length raises ``InvalidResponse``.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from .grammar import RESPONSE_HEADER_BLOCK_RE, STATUS_RE

SERVER_NAME = "prefork"


class InvalidResponse(Exception):
    """The application's status or headers cannot be sent as they are (rendered as a 500)."""


class DateHeader:
    """``Date:`` header bytes in IMF-fixdate (RFC 9110 §5.6.7), formatted at most once a second."""

    __slots__ = ("_second", "_line")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def __call__(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"Date: " + formatdate(now, usegmt=True).encode("ascii") + b"\r\n"
        return self._line


date_header = DateHeader()
SERVER_HEADER = f"Server: {SERVER_NAME}\r\n".encode("ascii")


def server_headers() -> bytes:
    """Date and Server lines, for every response including the server's own errors."""
    return date_header() + SERVER_HEADER


_status_lines: dict[str, tuple[bytes, int]] = {}


def status_line(status: object) -> tuple[bytes, int]:
    """``"200 OK"`` -> ``(b"HTTP/1.1 200 OK\\r\\n", 200)``; validated once per distinct status."""
    cached = _status_lines.get(status)  # type: ignore[arg-type]
    if cached is not None:
        return cached
    if type(status) is not str or STATUS_RE.fullmatch(status) is None:
        raise InvalidResponse(f"invalid status {status!r}")
    try:
        line = b"HTTP/1.1 " + status.encode("latin-1") + b"\r\n"
    except UnicodeEncodeError:
        raise InvalidResponse(f"status is not latin-1: {status!r}") from None
    result = (line, int(status[:3]))
    if len(_status_lines) < 512:
        _status_lines[status] = result
    return result


def header_block(lines: list[str]) -> bytes:
    """Encode ``["Name: value\\r\\n", ...]`` after checking each is one well-formed field line."""
    block = "".join(lines)
    # The pattern excludes CR, LF and controls from names and values, so counting LFs proves that no
    # value smuggled a line break that would start a field of its own.
    if RESPONSE_HEADER_BLOCK_RE.fullmatch(block) is None or block.count("\n") != len(lines):
        raise InvalidResponse(f"invalid header in {lines!r}")
    try:
        return block.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidResponse(f"header is not latin-1: {lines!r}") from None


def chunk(data: bytes) -> bytes:
    """One chunk of the chunked transfer coding (RFC 9112 §7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
