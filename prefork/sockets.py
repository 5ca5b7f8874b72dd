"""Listening sockets: parse ``-b`` addresses, bind them in the master before forking, tune them once.

Options set on a listening TCP socket (timeouts, TCP_NODELAY) are inherited by the sockets that
accept() returns, so workers pay nothing per connection for them; unix sockets do not inherit them
and get them at accept (see ``Listener.accept``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import stat
import struct
from typing import Any

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)


class BindError(Exception):
    """An address that cannot be listened on, with the reason."""


def parse_address(text: str) -> tuple[int, Any]:
    """``HOST:PORT`` / ``[IPV6]:PORT`` / ``unix:PATH`` -> ``(family, sockaddr)``; as in gunicorn,
    ``unix://PATH`` is PATH too (``unix://tmp/x.sock`` is relative, ``unix:///tmp/x.sock`` absolute)."""
    if text.startswith("unix:"):
        path = text[7:] if text.startswith("unix://") else text[5:]
        if not path:
            raise BindError(f"{text!r}: empty unix socket path")
        return socket.AF_UNIX, path
    if text.startswith("["):
        host, sep, port = text[1:].partition("]")
        if not sep or (port and not port.startswith(":")):
            raise BindError(f"{text!r}: expected [IPV6]:PORT")
        port = port[1:]
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "8000")
    port = port or "8000"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BindError(f"{text!r}: invalid port {port!r}")
    host = host or "0.0.0.0"
    try:
        info = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"{text!r}: {exc}") from None
    family, _, _, _, sockaddr = info[0]
    return family, sockaddr


class Listener:
    """One bound, listening, non-blocking socket."""

    def __init__(self, sock: socket.socket, address: str, owned: bool = True) -> None:
        self.sock = sock
        self.address = address  # as the operator wrote it
        self.owned = owned  # whether this master removes the unix socket file when it exits
        self.family = sock.family
        self.server_address = sock.getsockname()  # for SERVER_NAME/SERVER_PORT when no Host is sent
        self.unix_path = self.server_address if sock.family == socket.AF_UNIX else None
        self.inherits_options = sock.family != socket.AF_UNIX  # accepted TCP sockets inherit SO_*TIMEO
        self._timeouts: list[tuple[int, bytes]] = []
        self._accept4 = sock._accept  # type: ignore[attr-defined]  # (fd, peer address)
        self._family_number = int(sock.family)

    def accept(self) -> tuple[socket.socket, Any]:
        """``(socket, peer address)`` of the next connection; raises BlockingIOError when none waits.
        Not ``socket.accept()``: it converts the family and type to enums on every call, which
        profiled at 5% of a ``Connection: close`` request."""
        fd, peer = self._accept4()
        sock = socket.socket(self._family_number, socket.SOCK_STREAM, 0, fd)
        if not self.inherits_options:
            for option, value in self._timeouts:
                sock.setsockopt(socket.SOL_SOCKET, option, value)
        return sock, peer

    def set_timeouts(self, read_timeout: float, write_timeout: float) -> None:
        """Kernel-enforced read/write timeouts for accepted sockets (0 = none)."""
        self._timeouts = [
            (socket.SO_RCVTIMEO, _timeval(read_timeout)),
            (socket.SO_SNDTIMEO, _timeval(write_timeout)),
        ]
        if self.inherits_options:
            for option, value in self._timeouts:
                self.sock.setsockopt(socket.SOL_SOCKET, option, value)

    def refuse_new(self) -> None:
        """Stop the kernel completing new connections on this socket, keeping those it already has.

        A classic BPF filter that drops every packet makes new SYNs go unanswered (the client retries
        a second later and, the socket being closed by then, is refused), while connections already in
        the accept queue stay there for the workers' last accept. Without it, a connection completed
        between the last accept() and close() would be reset. Linux only; elsewhere a no-op.
        """
        drop_all = struct.pack("HBBI", 0x06, 0, 0, 0)  # BPF_RET | BPF_K: accept 0 bytes
        program = ctypes.create_string_buffer(drop_all)
        fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        except OSError:
            pass

    def close(self) -> None:
        if self.owned and self.unix_path:
            _remove_socket_file(self.unix_path)
        self.sock.close()

    def __repr__(self) -> str:
        return f"<Listener {self.address}>"


def from_fd(fd: int, owned: bool) -> Listener:
    """A listening socket inherited from systemd or from the master before a binary upgrade."""
    sock = socket.socket(fileno=fd)
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        raise BindError(f"inherited fd {fd} is not a listening socket")
    sock.setblocking(False)
    sock.set_inheritable(False)
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        address = f"unix:{name}"
    elif sock.family == socket.AF_INET6:
        address = f"[{name[0]}]:{name[1]}"
    else:
        address = f"{name[0]}:{name[1]}"
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Listener(sock, address, owned)


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


def bind(
    address: str,
    backlog: int,
    umask: int | None = None,
    owner: tuple[int | None, int | None] = (None, None),
) -> Listener:
    """Listen on ``address``; ``fd://N`` takes over an open listening socket. A unix socket is created
    with mode 0777 less ``umask`` (0 by default, as gunicorn: the proxy's user must connect) and owned
    by ``owner`` (--user/--group). ``[::]`` accepts IPv4 too, as in gunicorn; a specific IPv6 address
    stays IPv6-only."""
    if address.startswith("fd://"):
        fd = address[5:]
        if not fd.isdigit():
            raise BindError(f"{address!r}: expected fd://NUMBER")
        try:
            return from_fd(int(fd), owned=False)
        except OSError as exc:
            raise BindError(f"cannot use {address}: {exc.strerror or exc}") from None
    family, sockaddr = parse_address(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            _clear_stale_socket_file(str(sockaddr))
            old_umask = os.umask(umask or 0)
            try:
                sock.bind(sockaddr)
            finally:
                os.umask(old_umask)
            if owner != (None, None):
                os.chown(str(sockaddr), -1 if owner[0] is None else owner[0], -1 if owner[1] is None else owner[1])
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if family == socket.AF_INET6:
                dual_stack = sockaddr[0] == "::"
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if dual_stack else 1)
            sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on {address}: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return Listener(sock, address)


def _clear_stale_socket_file(path: str) -> None:
    """Remove a socket file left by a dead server; refuse if another server still answers on it."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise BindError(f"cannot listen on unix:{path}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            _remove_socket_file(path)
            return
        raise BindError(f"cannot listen on unix:{path}: {exc.strerror}") from None
    finally:
        probe.close()
    raise BindError(f"cannot listen on unix:{path}: another server is listening there")


def _remove_socket_file(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass
