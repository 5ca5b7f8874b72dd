"""Response serialisation: status line, header block, Date, chunked encoding (RFC 9112 §4, §7).

Rules of this file: pure functions and small caches; callers own the socket. Everything an
application hands us is validated here before a byte of it is written: an invalid name, a CR/LF/NUL
in a value, a non-latin-1 character or a conflicting Content-Length raises ``InvalidResponse``.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from .grammar import CONTENT_LENGTH_RE, RESPONSE_HEADER_BLOCK_RE, STATUS_RE

SERVER_NAME = "prefork"


class InvalidResponse(Exception):
    """The application's status or headers cannot be sent as they are (rendered as a 500)."""


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float) -> str:
    """IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT`` (email.utils has it, at 1.4 MB of imports)."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


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
            self._line = b"Date: " + http_date(now).encode("ascii") + b"\r\n"
        return self._line


date_header = DateHeader()
SERVER_HEADER = f"Server: {SERVER_NAME}\r\n".encode("ascii")


def server_headers() -> bytes:
    """Date and Server lines, for every response including the server's own errors."""
    return date_header() + SERVER_HEADER


_status_lines: dict[str, tuple[bytes, int]] = {}


def status_line(status: object) -> tuple[bytes, int]:
    """``"200 OK"`` -> ``(b"HTTP/1.1 200 OK\\r\\n", 200)``; validated once per distinct status."""
    cached = _status_lines.get(status)  # type: ignore[call-overload]
    if cached is not None:
        return cached
    if type(status) is not str or STATUS_RE.fullmatch(status) is None:
        raise InvalidResponse(f"invalid status {status!r}")
    if len(status) == 3:
        status += " "  # RFC 9112 §4: the SP before an empty reason-phrase is not optional
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


# Response headers the server owns or that must not cross a hop (RFC 9110 §7.6.1); the
# application's values are read for their meaning, then replaced by ours or dropped.
_SPECIAL = frozenset(
    {
        "content-length",
        "connection",
        "transfer-encoding",
        "date",
        "server",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)


class AppHead(NamedTuple):
    """What the application's status and headers mean, validated and partly serialised."""

    status_line: bytes
    code: int
    block: bytes  # the application's own header lines, encoded (no framing or hop-by-hop ones)
    declared_length: int | None  # its Content-Length
    wants_close: bool  # it said Connection: close
    own_date: bool  # it sent its own Date / Server, so ours are left out
    own_server: bool


_app_heads: dict[tuple, AppHead] = {}
_MAX_CACHED_BLOCK = 2048  # 1024 entries of at most this: a few MiB at worst


def app_head(status: object, headers: list) -> AppHead:
    """``analyse_app_head`` memoised per distinct (status, headers): most applications send the same
    few header sets again and again, and their validation is then done once per worker."""
    try:
        key = (status, tuple(headers))
        cached = _app_heads.get(key)
    except TypeError:  # unhashable values: invalid anyway, let the analysis say why
        return analyse_app_head(status, headers)
    if cached is None:
        cached = analyse_app_head(status, headers)
        if len(cached.block) <= _MAX_CACHED_BLOCK:  # values may echo client input: bound the memory
            if len(_app_heads) >= 1024:
                _app_heads.clear()
            _app_heads[key] = cached
    return cached


def analyse_app_head(status: object, headers: list) -> AppHead:
    status_bytes, code = status_line(status)
    lines = []
    declared = None
    wants_close = own_date = own_server = False
    for name, value in headers:
        lname = name.lower()
        if type(value) is str and value[:1] in (" ", "\t"):
            value = value.lstrip(" \t")  # OWS is not part of a field value (RFC 9110 §5.5), as gunicorn does
        if lname in _SPECIAL:
            if lname == "content-length":
                if type(value) is not str or CONTENT_LENGTH_RE.fullmatch(value) is None:
                    raise InvalidResponse(f"invalid Content-Length {value!r}")
                if declared is not None and int(value) != declared:
                    raise InvalidResponse("conflicting Content-Length headers")
                declared = int(value)
                continue
            if lname == "connection":
                wants_close = "close" in [t.strip(" \t").lower() for t in value.split(",")]
                continue
            if lname == "transfer-encoding":
                raise InvalidResponse("the application must not set Transfer-Encoding")
            if lname == "date":
                own_date = True
            elif lname == "server":
                own_server = True
            else:
                continue  # hop-by-hop: dropped
        lines.append(name + ": " + value + "\r\n")
    return AppHead(status_bytes, code, header_block(lines), declared, wants_close, own_date, own_server)


_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_CLOSE = b"Connection: close\r\n"
_KEEP_ALIVE = b"Connection: keep-alive\r\n"


def frame(
    app: AppHead, body_length: int | None, is_head: bool, http11: bool, keep_alive: bool, date: bytes
) -> tuple[bytes, bool, int | None, bool, bool]:
    """How the response is delimited (RFC 9112 §6), and its head.

    ``body_length`` is the body's size when the server knows it (one-piece body, file), else None;
    ``keep_alive`` is whether the connection may carry another request as far as the request, the
    server and the request body are concerned; ``date`` is the Date line (left out when the
    application sent its own). Returns ``(head, skip_body, length, chunked, keep_alive)``: whether no
    body may be sent (HEAD, 1xx, 204, 304; RFC 9110 §6.4.1), the body bytes the framing promises (None
    when chunked or delimited by the close), and whether the connection stays open afterwards.
    """
    code = app.code
    declared = app.declared_length if app.declared_length is not None else body_length
    if app.wants_close:
        keep_alive = False
    # RFC 9110 §8.6: no Content-Length on 1xx and 204; on HEAD and 304 it states the would-be size.
    length_line = b"Content-Length: %d\r\n" % declared if declared is not None and code >= 200 and code != 204 else b""
    chunked = False
    length = None
    skip_body = code < 200 or code == 204 or code == 304 or is_head
    if skip_body:
        if code < 200:
            keep_alive = False
    elif declared is not None:
        length = declared
    elif http11:
        chunked = True
    else:
        keep_alive = False  # HTTP/1.0 without a length: the close delimits the body
    connection = b"" if keep_alive and http11 else _KEEP_ALIVE if keep_alive else _CLOSE
    head = b"".join(
        (
            app.status_line,
            b"" if app.own_date else date,
            b"" if app.own_server else SERVER_HEADER,
            app.block,
            length_line,
            _CHUNKED if chunked else b"",
            connection,
            b"\r\n",
        )
    )
    return head, skip_body, length, chunked, keep_alive


def chunk(data: bytes) -> bytes:
    """One chunk of the chunked transfer coding (RFC 9112 §7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
