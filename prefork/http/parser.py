"""Sans-I/O request-head parser: bytes in, ``RequestHead`` out (RFC 9112 §2-§3, §5, §6.3, §9.3).

Rules of this file:
- ``parse_head(buf, limits, scanned)`` looks only at the bytes it is given; it never reads a socket and
  never sees the whole settings object, only ``Limits``. ``scanned`` is how much of ``buf`` an earlier
  call already found incomplete, so a head arriving a byte at a time costs linear, not quadratic, time.
- It returns ``None`` while the head is incomplete, and raises an ``HTTPError`` the moment the bytes
  can no longer become a valid head or exceed a limit. The verdict depends only on the bytes, never
  on where TCP cut them nor on what the worker parsed before (caches only remember verdicts that
  were computed in full).
- Every ambiguity a proxy in front of us could resolve differently is refused, never guessed: that is
  what makes request smuggling impossible through this server.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import (
    BadRequest,
    ExpectationFailed,
    HeaderFieldsTooLarge,
    HTTPError,
    NotImplementedHTTP,
    PayloadTooLarge,
    URITooLong,
    VersionNotSupported,
)
from .grammar import (
    ABSOLUTE_FORM_RE,
    BARE_EOL_RE,
    CONTENT_LENGTH_RE,
    FIELD_VALUE_RE,
    HOST_RE,
    NOT_TCHAR_BYTES_RE,
    REQUEST_LINE_RE,
    TOKEN_RE,
    VERSION_LIKE_RE,
)

# A hard cap on a head when the configured limits say "unlimited" (0), so memory stays bounded.
UNLIMITED_HEAD = 1 << 20
# RFC 9112 §2.2 asks a server to ignore "at least one" empty line before a request line; more than a
# few is not a client, and each would cost a scan.
MAX_EMPTY_LINES = 8


class Limits(NamedTuple):
    """Size limits with gunicorn's names and defaults; 0 means no limit (up to UNLIMITED_HEAD)."""

    max_line: int = 4094  # limit_request_line -> 414
    max_fields: int = 100  # limit_request_fields -> 431
    max_field_size: int = 8190  # limit_request_field_size -> 431
    max_body: int = 0  # limit_request_body -> 413, checked before the body is read

    @property
    def max_head(self) -> int:
        if not (self.max_line and self.max_fields and self.max_field_size):
            return UNLIMITED_HEAD
        return self.max_line + 2 + self.max_fields * (self.max_field_size + 2) + 2


class RequestHead:
    """One parsed request head and the framing decisions derived from it."""

    __slots__ = (
        "method",
        "target",
        "path",
        "query",
        "version",
        "headers",
        "host",
        "content_length",
        "chunked",
        "keep_alive",
        "expect_continue",
    )

    def __init__(self, method: str, target: str, version: str) -> None:
        self.method = method
        self.target = target  # as sent, for RAW_URI and the access log
        self.path = ""  # still percent-encoded
        self.query = ""
        self.version = version  # "HTTP/1.0" or "HTTP/1.1"
        self.headers: list[tuple[str, str]] = []  # (name as sent, value without OWS)
        self.host: str | None = None
        self.content_length = 0  # body length when not chunked
        self.chunked = False
        self.keep_alive = version == "HTTP/1.1"
        self.expect_continue = False

    @property
    def uri(self) -> str:
        """gunicorn's name for the request-target, for hooks written for gunicorn."""
        return self.target

    def __repr__(self) -> str:
        return f"<RequestHead {self.method} {self.target} {self.version}>"


def parse_head(buf: bytes | bytearray, limits: Limits, scanned: int = 0) -> tuple[RequestHead, int] | None:
    """Parse the head at the start of ``buf``; return ``(head, bytes consumed)`` or ``None`` if incomplete.

    ``scanned``: the length of ``buf`` when an earlier call on the same connection returned None.
    """
    start = 0
    while buf.startswith(b"\r\n", start):  # §2.2: ignore empty lines before the request-line
        start += 2
        if start > 2 * MAX_EMPTY_LINES:
            raise BadRequest("too many empty lines before the request line")
    end = buf.find(b"\r\n\r\n", scanned - 3 if scanned > start + 3 else start)
    if end < 0:
        # A CR at the very end may start a CRLF: it is neither a bare CR nor counted in a line's length.
        fault = _first_fault(buf, start, max(start, scanned - 1), len(buf) - (buf[-1:] == b"\r"), limits)
        if fault is not None:
            raise fault
        return None
    lines = buf[start:end].decode("latin-1").split("\r\n")
    try:
        head = _request_line(lines[0], limits)
        _message_semantics(head, _field_lines(head, lines, limits), limits)
    except HTTPError as exc:
        # Had the head arrived in pieces, the fault earliest in byte order that an incomplete head
        # shows would have been refused first: refuse that one, so the verdict never depends on TCP.
        raise _first_fault(buf, start, start, end + 2, limits) or exc from None
    return head, end + 4


def _first_fault(buf: bytes | bytearray, start: int, new: int, available: int, limits: Limits) -> HTTPError | None:
    """The fault earliest in byte order among those an unfinished head can show: a bare CR or LF, a
    method byte that is not a tchar, a line or a head over its limit, a complete request line that is
    invalid. ``buf[start:available]`` is the head so far; bytes before ``new`` were looked at by an
    earlier call, which found none of these."""
    faults: list[tuple[int, int, HTTPError]] = []  # (position, rank for ties, error)
    bare = BARE_EOL_RE.search(buf, new, available)
    if bare is not None:
        faults.append((bare.start(), 0, BadRequest("bare CR or LF in request head")))
    eol = buf.find(b"\r\n", start, available)
    line_end = eol if eol >= 0 else available
    space = buf.find(b" ", start, line_end)
    if space == start:
        faults.append((start, 1, BadRequest("invalid request line")))
    else:
        method = NOT_TCHAR_BYTES_RE.search(buf, start, space if space >= 0 else line_end)
        if method is not None:
            faults.append((method.start(), 1, BadRequest("invalid request line")))
    line_limit = limits.max_line or UNLIMITED_HEAD
    if line_end - start > line_limit:
        faults.append((start + line_limit, 2, URITooLong("request line too long")))
    if eol >= 0:
        if eol + 2 > new:  # the request line completed since the last look: judge it now
            try:
                _request_line(buf[start:eol].decode("latin-1"), limits)
            except HTTPError as exc:
                faults.append((eol, 3, exc))
        field_limit = limits.max_field_size or UNLIMITED_HEAD
        line_start = max(eol + 2, buf.rfind(b"\r\n", eol, max(new - 1, eol)) + 2)
        while line_start < available:
            next_eol = buf.find(b"\r\n", line_start, available)
            end = next_eol if next_eol >= 0 else available
            if end - line_start > field_limit:
                faults.append((line_start + field_limit, 2, HeaderFieldsTooLarge("header field too large")))
                break
            if next_eol < 0:
                break
            line_start = next_eol + 2
        if available - start > limits.max_head:
            faults.append((start + limits.max_head, 2, HeaderFieldsTooLarge("request head too large")))
    return min(faults, key=lambda fault: fault[:2])[2] if faults else None


def _request_line(line: str, limits: Limits) -> RequestHead:
    if limits.max_line and len(line) > limits.max_line:
        raise URITooLong("request line too long")
    match = REQUEST_LINE_RE.fullmatch(line)
    if match is None:
        if VERSION_LIKE_RE.fullmatch(line) and not line.endswith(("HTTP/1.0", "HTTP/1.1")):
            raise VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are supported")
        raise BadRequest("invalid request line")
    method, target, version = match.groups()
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        raise VersionNotSupported("only HTTP/1.0 and HTTP/1.1 are supported")
    head = RequestHead(method, target, version)
    if target[0] == "/" and "#" not in target and method != "CONNECT":  # origin-form (§3.2.1)
        head.path, _sep, head.query = target.partition("?")
    else:
        _request_target(head, target)  # a refusal or one of the other forms
    return head


def _request_target(head: RequestHead, target: str) -> None:
    """RFC 9112 §3.2: every request-target but a plain origin-form one (``_request_line`` takes
    those): a fragment or CONNECT is refused, asterisk-form only with OPTIONS, else absolute-form."""
    if "#" in target:
        raise BadRequest("fragment in request-target")
    if head.method == "CONNECT":
        raise NotImplementedHTTP("CONNECT is not supported")
    if target == "*":  # asterisk-form, §3.2.4
        if head.method != "OPTIONS":
            raise BadRequest("asterisk-form is only allowed with OPTIONS")
        head.path = "*"
    else:  # absolute-form, §3.2.2
        match = ABSOLUTE_FORM_RE.fullmatch(target)
        if match is None:
            raise BadRequest("invalid request-target")
        _scheme, authority, path, query = match.groups()
        if not HOST_RE.fullmatch(authority):
            raise BadRequest("invalid authority in request-target")
        head.path = path or "/"
        head.query = query or ""
        head.host = authority  # §3.2.2: the target's authority overrides Host


# The fields whose meaning the parser itself needs; their values are collected during the one pass.
_FRAMING_FIELDS = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect", "content-type"})
# Field names already found to be tokens, each with its lower-case form. Clients send the same few
# names over and over; a dict lookup replaces a regex match for each. Bounded: a client making up
# names cannot grow it past _MAX_KNOWN_NAMES short names (64 KiB of keys).
_known_names: dict[str, str] = {}
_MAX_KNOWN_NAMES = 1024
_MAX_KNOWN_NAME_LENGTH = 64


def _field_lines(head: RequestHead, lines: list[str], limits: Limits) -> dict[str, list[str]]:
    """Parse every field line into ``head.headers``; return the values of the framing fields."""
    if limits.max_fields and len(lines) - 1 > limits.max_fields:
        raise HeaderFieldsTooLarge("too many header fields")
    max_size = limits.max_field_size
    append = head.headers.append
    known = _known_names
    framing: dict[str, list[str]] = {}
    for line in lines[1:]:
        if max_size and len(line) > max_size:
            raise HeaderFieldsTooLarge("header field too large")
        # RFC 9112 §5: field-line = field-name ":" OWS field-value OWS
        name, colon, value = line.partition(":")
        lname = known.get(name) if colon else None
        if lname is None:
            if not colon or TOKEN_RE.fullmatch(name) is None:  # also refuses space before the colon
                if line[:1] in (" ", "\t"):
                    raise BadRequest("obsolete line folding is not accepted")
                raise BadRequest("invalid header field")
            lname = name.lower()
            if len(known) < _MAX_KNOWN_NAMES and len(name) <= _MAX_KNOWN_NAME_LENGTH:
                known[name] = lname
        value = value.strip(" \t")
        if not value.isprintable() and FIELD_VALUE_RE.fullmatch(value) is None:  # HTAB, obs-text pass
            raise BadRequest("invalid header field")
        append((name, value))
        if lname in _FRAMING_FIELDS:
            if lname in framing:
                framing[lname].append(value)
            else:
                framing[lname] = [value]
    return framing


def _message_semantics(head: RequestHead, framing: dict[str, list[str]], limits: Limits) -> None:
    """Host (§3.2), body length (§6.3), Connection (§9.3), Expect (RFC 9110 §10.1.1)."""
    http11 = head.version == "HTTP/1.1"
    hosts = framing.get("host")
    if hosts is None:
        if http11:
            raise BadRequest("HTTP/1.1 request without Host header")
    elif len(hosts) > 1:
        raise BadRequest("more than one Host header")
    elif hosts[0] and not HOST_RE.fullmatch(hosts[0]):  # §3.2: empty when the target has no authority
        raise BadRequest("invalid Host header")
    elif head.host is None:
        head.host = hosts[0]
    if len(framing) == (hosts is not None):
        return  # nothing else to decide: no body, default persistence

    types = framing.get("content-type")
    if types is not None and len(types) > 1:  # not a list field: two values are two different bodies
        raise BadRequest("more than one Content-Type header")
    codings = framing.get("transfer-encoding")
    lengths = framing.get("content-length")
    if codings is not None:
        _transfer_coding(head, ",".join(codings), lengths is not None, http11)
    elif lengths is not None:
        if len(lengths) > 1:  # §6.3 step 5: we refuse even identical duplicates
            raise BadRequest("more than one Content-Length header")
        if not CONTENT_LENGTH_RE.fullmatch(lengths[0]):
            if lengths[0].isascii() and lengths[0].isdigit():
                raise PayloadTooLarge("Content-Length out of range")
            raise BadRequest("invalid Content-Length")
        head.content_length = int(lengths[0])
        if limits.max_body and head.content_length > limits.max_body:
            raise PayloadTooLarge("request body larger than limit_request_body")

    connection = framing.get("connection")
    if connection is not None:
        only = connection[0].lower() if len(connection) == 1 else ""
        if only == "close":  # the usual values, without splitting the list
            head.keep_alive = False
        elif only == "keep-alive":
            head.keep_alive = True
        else:
            tokens = {t.strip(" \t").lower() for t in ",".join(connection).split(",")}
            if "close" in tokens:
                head.keep_alive = False
            elif not http11 and "keep-alive" in tokens:
                head.keep_alive = True

    expect = framing.get("expect")
    if expect is not None and http11:  # an HTTP/1.0 server ignores 100-continue (RFC 9110 §10.1.1)
        if ",".join(expect).strip(" \t").lower() != "100-continue":
            raise ExpectationFailed("only 100-continue is supported")
        head.expect_continue = True


def _transfer_coding(head: RequestHead, codings: str, has_length: bool, http11: bool) -> None:
    """RFC 9112 §6.1 and §6.3 steps 3-4 for requests."""
    if has_length:  # §6.3 step 3: the classic smuggling vector; reject, never pick one
        raise BadRequest("both Transfer-Encoding and Content-Length")
    if not http11:  # §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing
        raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
    names = [c.strip(" \t").lower() for c in codings.split(",")]  # only SP/HTAB are OWS (RFC 9110 §5.6.3)
    if "" in names:  # RFC 9110 §5.6.1 lets lists hold empty elements; a front proxy may not: refuse
        raise BadRequest("empty element in Transfer-Encoding")
    if names[-1] != "chunked":
        raise BadRequest("chunked must be the final transfer coding")
    if names.count("chunked") > 1:
        raise BadRequest("chunked applied more than once")
    if len(names) > 1:
        raise NotImplementedHTTP("unsupported transfer coding")
    head.chunked = True
