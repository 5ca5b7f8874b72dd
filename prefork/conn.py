"""One client connection: its socket, its unparsed bytes and head state (timer, PROXY header, where
the last incomplete parse stopped), and the few I/O calls the request cycle makes.

Owned by one worker thread at a time (the event loop while the connection waits for a request head,
then the thread running its request). Sockets stay in blocking mode: the kernel enforces the read and
write timeouts (SO_RCVTIMEO/SO_SNDTIMEO, set once on the listener and inherited by accepted sockets),
so a body read or a response write costs one system call, not a poll plus a call. Reads made on
behalf of the event loop pass MSG_DONTWAIT so they can never block it.

Timeouts in order: each blocking call is bounded by the kernel timeouts, which the master caps below
``--timeout``, and the worker's heartbeat (``Connection.progress``) is written before each call that
may block, so a slow client gets its 408 or its close from the worker before the master could take
the worker for hung. A response write first tries without blocking; a client that falls behind is
then held to ``--min-write-rate`` once it has been behind for ``--write-timeout`` seconds, so a reader
taking a few bytes now and then cannot keep a worker for ever.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from time import monotonic

from .balance import write_too_slow
from .http.errors import RequestTimeout
from .http.parser import Limits, RequestHead, parse_head
from .http.proxy_protocol import parse_proxy_header

# One read takes a head plus a 64 KiB body in one system call (measured: 15% less CPU per 64 KiB POST
# than 64 KiB reads); a small read costs the same, the buffer being shrunk to what arrived.
RECV_SIZE = 131072
_DONTWAIT = socket.MSG_DONTWAIT  # a module constant: one lookup less per call on the hot path


class ClientDisconnected(ConnectionError):
    """The peer closed or reset the connection, or a write to it timed out."""


def _no_progress() -> None:
    pass


class Connection:
    supports_sendfile = True  # False for TLS: os.sendfile would bypass the encryption
    handoff_allowed = True  # False for TLS: the session state cannot leave the process
    # Set once per worker process by ``Connection.configure``:
    progress: Callable[[], None] = staticmethod(_no_progress)  # refreshes the worker's heartbeat before a blocking call
    min_write_rate = 0.0  # bytes/s a client that fell behind must keep reading at; 0 = no minimum
    write_grace = 30.0  # seconds a client may be behind before the minimum rate applies
    __slots__ = (
        "sock",
        "fd",
        "buf",
        "environ",
        "idle_since",
        "head_since",
        "requests",
        "linger",
        "busy",
        "disarmed",
        "trusted",
        "proxy_header_pending",
        "behind_since",
        "behind_sent",
        "scanned",
    )

    def __init__(self, sock: socket.socket, environ: dict, now: float) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.buf: bytes | bytearray = b""  # received, not yet consumed (head, body, pipelined)
        self.environ = environ  # per-connection part of every environ (peer, server, wsgi.*)
        self.idle_since = now  # last time a response completed (or accept)
        self.head_since = 0.0  # when the first byte of the pending head arrived; 0 = none pending
        self.requests = 0
        self.linger = False  # unread input may remain: close gently so our last response survives
        self.busy = False  # a request thread owns it (threaded worker); the event loop keeps off
        self.disarmed = False  # busy, and silenced in epoll until its owner gives it back (threaded)
        self.trusted = False  # the peer is a trusted proxy (--forwarded-allow-ips)
        self.proxy_header_pending = False  # a PROXY protocol header must come first (--proxy-protocol)
        self.behind_since = 0.0  # when the client last stopped keeping up with our writes; 0 = it keeps up
        self.behind_sent = 0  # bytes it took since then
        self.scanned = 0  # bytes of buf an earlier parse found to be an incomplete head

    @classmethod
    def configure(cls, progress: Callable[[], None], min_write_rate: float, write_grace: float) -> None:
        cls.progress = staticmethod(progress)
        cls.min_write_rate = min_write_rate
        cls.write_grace = write_grace

    def next_head(self, limits: Limits) -> RequestHead | None:
        """The next complete request head in the buffer (consumed), or None while it is incomplete:
        the head timer starts with its first byte, and the next call resumes where this one stopped.
        Raises HTTPError."""
        if self.proxy_header_pending and not self._read_proxy_header():
            return None
        parsed = parse_head(self.buf, limits, self.scanned)
        if parsed is None:
            self.scanned = len(self.buf)
            if self.buf and not self.head_since:
                self.head_since = monotonic()
            return None
        head, used = parsed
        if used == len(self.buf):
            self.buf = b""  # the usual case: nothing pipelined behind this head
        else:
            self.consume(used)
        self.head_since = 0.0
        self.scanned = 0
        return head

    def _read_proxy_header(self) -> bool:
        """Consume the PROXY protocol header; False while it is incomplete. Raises HTTPError."""
        parsed = parse_proxy_header(self.buf)
        if parsed is None:
            if self.buf and not self.head_since:
                self.head_since = monotonic()  # the header timeout covers the PROXY header too
            return False
        address, used = parsed
        self.consume(used)
        self.proxy_header_pending = False
        if address is not None:
            self.environ = dict(self.environ, REMOTE_ADDR=address[0], REMOTE_PORT=str(address[1]))
        return True

    def recv_nowait(self) -> bool:
        """Append what the kernel has, without blocking; False when the peer is gone."""
        try:
            data = self.sock.recv(RECV_SIZE, _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        if self.buf:
            self.append(data)
        else:
            self.buf = data  # the usual case: nothing was left over
        return True

    def append(self, data: bytes) -> None:
        buf = self.buf
        if not buf:
            self.buf = data
        elif type(buf) is bytearray:
            buf += data  # amortised: a client dribbling bytes cannot make us copy the head each time
        else:
            self.buf = bytearray(buf) + data

    def consume(self, n: int) -> None:
        buf = self.buf
        if n >= len(buf):
            self.buf = b""
        elif type(buf) is bytearray:
            del buf[:n]  # O(1) at the front of a bytearray
        else:
            self.buf = buf[n:]

    def recv(self, size: int) -> bytes:
        """Blocking read of at most ``size`` bytes for a request body, bounded by the read timeout."""
        self.progress()
        try:
            data = self.sock.recv(min(size, RECV_SIZE))
        except (BlockingIOError, TimeoutError):
            raise RequestTimeout("timed out reading the request body") from None
        except OSError as exc:
            raise ClientDisconnected(str(exc)) from None
        if not data:
            raise ClientDisconnected("client closed the connection during the request body")
        return data

    def send(self, data: bytes) -> None:
        try:
            n = self.sock.send(data, _DONTWAIT)
        except BlockingIOError:
            n = 0
        except OSError as exc:  # reset, broken pipe
            raise ClientDisconnected(str(exc)) from None
        if n == len(data):
            if self.behind_since:
                self.behind_since = 0.0
            return
        view = memoryview(data)[n:]
        while view:
            self._behind(n)
            try:
                n = self.sock.send(view)
            except OSError as exc:  # reset, broken pipe, or the write timeout (EAGAIN)
                raise ClientDisconnected(str(exc) or "write timed out") from None
            view = view[n:]

    def _behind(self, sent: int) -> None:
        """Before a write that may block: heartbeat, and the minimum-rate rule."""
        self.progress()
        now = monotonic()
        if not self.behind_since:
            self.behind_since, self.behind_sent = now, 0
            return
        self.behind_sent += sent
        if write_too_slow(now - self.behind_since, self.behind_sent, self.write_grace, self.min_write_rate):
            raise ClientDisconnected(f"client reads slower than {self.min_write_rate:.0f} bytes/s")

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Send ``count`` bytes of file ``fd`` from ``offset`` with os.sendfile; returns bytes sent."""
        sent = n = 0
        while sent < count:
            self._behind(n)
            try:
                n = os.sendfile(self.fd, fd, offset + sent, count - sent)
            except OSError as exc:
                raise ClientDisconnected(str(exc) or "write timed out") from None
            if n == 0:  # the file is shorter than announced
                break
            sent += n
        return sent

    def detach(self) -> None:
        """Close our descriptor of a connection handed to another worker (no shutdown: it lives on)."""
        self.sock.close()

    def send_nowait(self, data: bytes) -> None:
        """Best-effort write that never blocks (error responses to clients we are dropping)."""
        try:
            self.sock.send(data, _DONTWAIT)
        except OSError:
            pass

    def close(self) -> None:
        """Close; with ``linger`` set, first half-close and discard pending input, because closing
        a socket with unread input makes the kernel send RST, which can destroy our last response
        before the client reads it."""
        sock = self.sock
        try:
            if self.linger:
                sock.shutdown(socket.SHUT_WR)
                for _ in range(16):
                    if not sock.recv(RECV_SIZE, _DONTWAIT):
                        break
        except OSError:
            pass
        sock.close()
