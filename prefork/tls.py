"""TLS with the standard ``ssl`` module, for deployments without a proxy in front.

The context is built once per process from the settings (the master builds one first, so that a bad
certificate stops the start with a clear error). ``TLSConnection`` keeps the event loop non-blocking:
the handshake and every read made for the loop run with the socket briefly non-blocking, and bytes
OpenSSL already decrypted (``pending()``) are drained at once, since epoll cannot see them. Request
threads read and write in blocking mode, bounded by the kernel timeouts as for plain connections.
``os.sendfile`` would bypass encryption, so TLS responses never use it.
"""

from __future__ import annotations

import ssl
from typing import Any

from .conn import RECV_SIZE, ClientDisconnected, Connection
from .http.errors import RequestTimeout

CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
    "0": ssl.CERT_NONE,
    "1": ssl.CERT_OPTIONAL,
    "2": ssl.CERT_REQUIRED,
}


def server_context(settings: Any) -> ssl.SSLContext | None:
    """The server's SSLContext, or None without --certfile. Raises ssl.SSLError/OSError when unusable."""
    if not settings.certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(settings.certfile, settings.keyfile or None)
    if settings.ca_certs:
        context.load_verify_locations(settings.ca_certs)
    context.verify_mode = CERT_REQS[str(settings.cert_reqs).lower()]
    if settings.ciphers:
        context.set_ciphers(settings.ciphers)
    return context


class TLSConnection(Connection):
    __slots__ = ("handshaking",)
    supports_sendfile = False
    handoff_allowed = False

    def __init__(self, sock: ssl.SSLSocket, environ: dict, now: float) -> None:
        super().__init__(sock, environ, now)
        self.handshaking = True

    def recv_nowait(self) -> bool:
        sock: ssl.SSLSocket = self.sock  # type: ignore[assignment]
        sock.setblocking(False)
        try:
            if self.handshaking:
                sock.do_handshake()
                self.handshaking = False
            while True:
                data = sock.recv(RECV_SIZE)
                if not data:
                    return False
                self.append(data)
                if not sock.pending():
                    return True
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True
        except (ssl.SSLError, OSError, ValueError):
            return False  # a failed handshake or a broken stream: nothing to answer
        finally:
            sock.setblocking(True)  # blocking again; the kernel read/write timeouts still apply

    def recv(self, size: int) -> bytes:
        """Blocking read for a request body; the kernel read timeout surfaces as WANT_READ here."""
        try:
            data = self.sock.recv(min(size, RECV_SIZE))
        except (ssl.SSLWantReadError, BlockingIOError, TimeoutError):
            raise RequestTimeout("timed out reading the request body") from None
        except (OSError, ValueError) as exc:
            raise ClientDisconnected(str(exc)) from None
        if not data:
            raise ClientDisconnected("client closed the connection during the request body")
        return data

    def send(self, data: bytes) -> None:
        """Blocking write through the TLS layer, bounded by the kernel write timeout."""
        self.progress()
        try:
            self.sock.sendall(data)
        except (OSError, ValueError) as exc:
            raise ClientDisconnected(str(exc) or "write timed out") from None

    def send_nowait(self, data: bytes) -> None:
        sock = self.sock
        sock.setblocking(False)
        try:
            sock.send(data)
        except (ssl.SSLError, OSError, ValueError):
            pass
        finally:
            sock.setblocking(True)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
