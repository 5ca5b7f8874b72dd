"""Sans-I/O decoder for the chunked transfer coding of request bodies (RFC 9112 §7.1).

Rules of this file:
- ``ChunkedDecoder.decode(buf)`` consumes what it can from ``buf`` and returns the decoded data and
  how many bytes it used; the caller keeps the rest (it may be the next pipelined request).
- Syntax is strict: hex size only (no sign, no "0x", no underscores), extensions per the grammar,
  CRLF exactly after each chunk's data, trailer lines validated like header lines and discarded.
- The body limit is enforced on the declared chunk sizes, before their data is read.
"""

from __future__ import annotations

from .errors import BadRequest, HeaderFieldsTooLarge, PayloadTooLarge
from .grammar import CHUNK_LINE_RE, FIELD_LINE_RE

MAX_CHUNK_LINE = 4096  # chunk-size plus extensions; longer is an attack, not a real client

SIZE, DATA, DATA_END, TRAILER, DONE = range(5)


class ChunkedDecoder:
    """Decodes one chunked body; ``done`` becomes true after the last chunk and trailer section."""

    __slots__ = ("state", "remaining", "total", "max_body", "max_fields", "max_field_size", "trailers")

    def __init__(self, max_body: int = 0, max_fields: int = 100, max_field_size: int = 8190) -> None:
        self.state = SIZE
        self.remaining = 0  # data bytes left in the current chunk
        self.total = 0
        self.max_body = max_body
        self.max_fields = max_fields
        self.max_field_size = max_field_size
        self.trailers = 0

    @property
    def done(self) -> bool:
        return self.state == DONE

    def decode(self, buf: bytes | bytearray) -> tuple[bytes, int]:
        """Decode from ``buf``; return ``(data, consumed)``. Raises HTTPError on invalid framing."""
        out = []
        pos = 0
        end = len(buf)
        while pos < end:
            state = self.state
            if state == DATA:
                take = min(self.remaining, end - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self.remaining -= take
                if not self.remaining:
                    self.state = DATA_END
            elif state == DATA_END:
                if end - pos < 2:
                    if buf[pos : pos + 1] != b"\r":
                        raise BadRequest("chunk data not followed by CRLF")
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise BadRequest("chunk data not followed by CRLF")
                pos += 2
                self.state = SIZE
            elif state in (SIZE, TRAILER):
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    self._check_partial_line(buf, pos)
                    break
                line = buf[pos:eol]
                pos = eol + 2
                if state == SIZE:
                    self._size_line(line)
                else:
                    self._trailer_line(line)
            else:  # DONE: the rest belongs to the next request
                break
        return b"".join(out), pos

    def _check_partial_line(self, buf: bytes | bytearray, pos: int) -> None:
        # A CR at the very end may be the start of the line's CRLF: it does not count, so the verdict
        # is the same whatever the split (the complete line is measured without its CRLF).
        pending = len(buf) - pos - (buf[-1:] == b"\r")
        if self.state == SIZE:
            if pending > MAX_CHUNK_LINE:
                raise BadRequest("chunk line too long")
        elif pending > (self.max_field_size or MAX_CHUNK_LINE):
            if self.max_field_size:
                raise HeaderFieldsTooLarge("trailer field too large")
            raise BadRequest("chunk line too long")
        if buf.find(b"\n", pos) >= 0:
            raise BadRequest("bare LF in chunked framing")

    def _size_line(self, line: bytes | bytearray) -> None:
        if len(line) > MAX_CHUNK_LINE:
            raise BadRequest("chunk line too long")
        match = CHUNK_LINE_RE.fullmatch(line)
        if match is None:
            raise BadRequest("invalid chunk size line")
        size = int(match.group(1), 16)
        if size == 0:
            self.state = TRAILER
            return
        self.total += size
        if self.max_body and self.total > self.max_body:
            raise PayloadTooLarge("request body larger than limit_request_body")
        self.remaining = size
        self.state = DATA

    def _trailer_line(self, line: bytes | bytearray) -> None:
        if not line:
            self.state = DONE
            return
        self.trailers += 1
        if self.max_fields and self.trailers > self.max_fields:
            raise HeaderFieldsTooLarge("too many trailer fields")
        if self.max_field_size and len(line) > self.max_field_size:
            raise HeaderFieldsTooLarge("trailer field too large")
        if FIELD_LINE_RE.fullmatch(line.decode("latin-1")) is None:
            raise BadRequest("invalid trailer field")
