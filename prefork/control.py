"""The master's internal HTTP endpoint (--metrics-bind): /metrics, /status, /livez, /readyz.

Served from the master's own loop, never by a worker, so it answers while every worker is busy or
hung. Every socket is non-blocking and the work per wake-up is bounded: at most MAX_CLIENTS
connections, a request head of at most 8 KiB, CLIENT_DEADLINE seconds each; a client that is slower is
dropped. One request per connection (``Connection: close``). The arbiter adds ``read_fds`` and
``write_fds`` to the select() it sleeps in and calls ``service`` with what became ready.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from time import monotonic

MAX_CLIENTS = 64
CLIENT_DEADLINE = 5.0
MAX_HEAD = 8192
REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class _Client:
    __slots__ = ("sock", "inbuf", "outbuf", "deadline")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = b""
        self.deadline = deadline


class ControlServer:
    def __init__(self, listener: socket.socket, respond: Callable[[str], tuple[int, str, str]]) -> None:
        """``respond(path) -> (status, content type, body)``."""
        self.listener = listener
        self.respond = respond
        self.clients: dict[int, _Client] = {}

    def read_fds(self) -> list[int]:
        fds = [fd for fd, client in self.clients.items() if not client.outbuf]
        if len(self.clients) < MAX_CLIENTS:
            fds.append(self.listener.fileno())
        return fds

    def write_fds(self) -> list[int]:
        return [fd for fd, client in self.clients.items() if client.outbuf]

    def service(self, readable: list[int], writable: list[int]) -> None:
        now = monotonic()
        if self.listener.fileno() in readable:
            self._accept(now)
        for fd in readable:
            client = self.clients.get(fd)
            if client is not None:
                self._read(fd, client)
        for fd in writable:
            client = self.clients.get(fd)
            if client is not None:
                self._write(fd, client)
        for fd, client in list(self.clients.items()):
            if now > client.deadline:
                self._close(fd)

    def _accept(self, now: float) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        self.clients[sock.fileno()] = _Client(sock, now + CLIENT_DEADLINE)

    def _read(self, fd: int, client: _Client) -> None:
        try:
            data = client.sock.recv(MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(fd)
            return
        client.inbuf += data
        if b"\r\n\r\n" not in client.inbuf and b"\n\n" not in client.inbuf:
            if len(client.inbuf) > MAX_HEAD:
                self._close(fd)
            return
        method, _, rest = client.inbuf.partition(b" ")
        target = rest.split(b" ", 1)[0].decode("latin-1")
        if method not in (b"GET", b"HEAD"):
            status, content_type, body = 405, "text/plain", "only GET\n"
        else:
            status, content_type, body = self.respond(target.split("?", 1)[0])
        payload = body.encode()
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        ).encode()
        client.outbuf = head + (b"" if method == b"HEAD" else payload)
        self._write(fd, client)

    def _write(self, fd: int, client: _Client) -> None:
        try:
            sent = client.sock.send(client.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(fd)
            return
        client.outbuf = client.outbuf[sent:]
        if not client.outbuf:
            self._close(fd)

    def _close(self, fd: int) -> None:
        client = self.clients.pop(fd, None)
        if client is not None:
            client.sock.close()

    def close(self) -> None:
        for fd in list(self.clients):
            self._close(fd)
