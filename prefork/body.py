"""``wsgi.input``: the request body as a PEP 3333 input stream, fed from a connection.

Runs in whichever thread runs the request. A body source never reads past its own end, so bytes of
a pipelined next request stay in the connection's buffer. ``Input.finish`` decides, after the
response, whether the connection can carry another request: the body must be fully read (or drained
within a bound), otherwise the connection is closed rather than misread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .conn import Connection
from .http.framing import ChunkedDecoder

DRAIN_LIMIT = 1 << 20  # unread body bytes we discard to keep a connection alive; beyond, close it


class LengthBody:
    """A body framed by Content-Length."""

    __slots__ = ("conn", "remaining")

    def __init__(self, conn: Connection, length: int) -> None:
        self.conn = conn
        self.remaining = length

    @property
    def done(self) -> bool:
        return self.remaining <= 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; b"" only at the end of the body."""
        n = min(size, self.remaining)
        if n <= 0:
            return b""
        conn = self.conn
        if conn.buf:
            data = bytes(conn.buf[:n])
            conn.consume(len(data))
        else:
            data = conn.recv(n)
        self.remaining -= len(data)
        return data


class ChunkedBody:
    """A body in the chunked transfer coding."""

    __slots__ = ("conn", "decoder")

    def __init__(self, conn: Connection, decoder: ChunkedDecoder) -> None:
        self.conn = conn
        self.decoder = decoder

    @property
    def done(self) -> bool:
        return self.decoder.done

    def read(self, size: int) -> bytes:
        """Some decoded bytes (may exceed ``size``: Input buffers them); b"" only at the end."""
        conn = self.conn
        decoder = self.decoder
        while not decoder.done:
            if conn.buf:
                data, used = decoder.decode(conn.buf)
                conn.consume(used)
                if data:
                    return data
                if decoder.done:
                    break
            conn.append(conn.recv(max(size, 8192)))
        return b""


class Input:
    """The object behind ``environ["wsgi.input"]``: read, readline, readlines, iteration."""

    __slots__ = ("_source", "_buf", "_before_first_read")

    def __init__(self, source: LengthBody | ChunkedBody, before_first_read: Callable[[], None] | None) -> None:
        self._source = source
        self._buf = b""
        self._before_first_read = before_first_read  # sends "100 Continue" when the client waits for it

    def _fill(self, size: int) -> bytes:
        if self._before_first_read is not None:
            before, self._before_first_read = self._before_first_read, None
            before()
        return self._source.read(size)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buf]
            while chunk := self._fill(65536):
                parts.append(chunk)
            self._buf = b""
            return b"".join(parts)
        buf = self._buf
        if len(buf) >= size:
            self._buf = buf[size:]
            return buf[:size]
        parts = [buf]
        have = len(buf)
        while have < size:  # pieces joined once: linear in the body size
            chunk = self._fill(size - have)
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._buf = data[size:]
        return data[:size]

    @property
    def done(self) -> bool:
        """Whether the whole body has been read from the connection."""
        return self._source.done

    def can_finish(self) -> bool:
        """Whether ``finish`` can leave the connection usable: False when the client still waits for
        100 Continue or more than DRAIN_LIMIT bytes of a Content-Length body are unread. Decided when
        the response head is built, so that the head can say Connection: close."""
        if self._source.done:
            return True
        if self._before_first_read is not None:
            return False
        return getattr(self._source, "remaining", 0) <= DRAIN_LIMIT  # chunked: unknown, try to drain

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        buf = self._buf
        eol = buf.find(b"\n")
        if eol < 0 and not 0 <= limit <= len(buf):
            grown = bytearray(buf)  # grows in place: linear however long the line
            while True:
                start = len(grown)
                chunk = self._fill(65536)
                if not chunk:
                    break
                grown += chunk
                eol = grown.find(b"\n", start)
                if eol >= 0 or 0 <= limit <= len(grown):
                    break
            buf = bytes(grown)
        end = eol + 1 if eol >= 0 else len(buf)
        if 0 <= limit < end:
            end = limit
        self._buf = buf[end:]
        return buf[:end]

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    def finish(self) -> bool:
        """After the response: consume what the app left unread; True if the connection stays usable."""
        if self._source.done:
            return True
        if self._before_first_read is not None:
            return False  # the client still waits for 100 Continue: it may never send the body
        budget = DRAIN_LIMIT
        try:
            while budget > 0:
                data = self._source.read(min(budget, 65536))
                if not data:
                    break
                budget -= len(data)
        except Exception:  # noqa: BLE001 - any failure here means "do not reuse this connection"
            return False
        return self._source.done


class EmptyInput:
    """``wsgi.input`` for a request without a body; stateless, so one instance serves every request."""

    __slots__ = ()
    done = True

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def finish(self) -> bool:
        return True


EMPTY_INPUT = EmptyInput()
