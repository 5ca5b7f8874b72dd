"""The hand-off channel: a worker gives a connection it cannot serve soon to whichever worker is free.

The master creates one ``AF_UNIX``/``SOCK_SEQPACKET`` socket pair before it forks the first worker and
keeps it for its lifetime, so a connection in flight survives the death of the worker that sent it
and of any worker that might have taken it. Every worker inherits both ends: it sends on ``tx`` and
watches ``rx`` in its epoll like a listening socket (EPOLLEXCLUSIVE: one waiting worker wakes), so the
first free worker takes the connection, never one particular busy one.

One message carries one connection: the descriptor (SCM_RIGHTS) and, in the payload, what the sending
worker knew of it: the bytes it had read but not consumed, how many requests it had served, whether the
peer is a trusted proxy or still owes a PROXY header, the peer and server addresses of its environ
(they may come from a PROXY header), and how long its pending head had been arriving. ``encode`` and
``decode`` are pure functions; ``Channel`` does the two system calls. TLS connections never travel:
their state lives inside the process that made the handshake.
"""

from __future__ import annotations

import array
import json
import socket
import struct
from typing import NamedTuple

MAX_BUFFERED = 65536  # a connection holding more unread bytes than this stays where it is
_LENGTH = struct.Struct("<H")
_FD_SPACE = socket.CMSG_SPACE(array.array("i").itemsize)
_MESSAGE_MAX = _LENGTH.size + 4096 + MAX_BUFFERED


class Parcel(NamedTuple):
    """What travels with a connection's descriptor."""

    buf: bytes
    requests: int
    trusted: bool
    proxy_header_pending: bool
    addresses: dict[str, str]  # REMOTE_ADDR, REMOTE_PORT, SERVER_NAME, SERVER_PORT
    head_age: float  # seconds its pending head has been arriving; -1 when none is pending


ADDRESS_KEYS = ("REMOTE_ADDR", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT")


def encode(parcel: Parcel) -> bytes:
    meta = json.dumps(
        [
            parcel.requests,
            parcel.trusted,
            parcel.proxy_header_pending,
            [parcel.addresses.get(k, "") for k in ADDRESS_KEYS],
            round(parcel.head_age, 3),
        ],
        separators=(",", ":"),
    ).encode()
    return _LENGTH.pack(len(meta)) + meta + parcel.buf


def decode(message: bytes) -> Parcel:
    """Raises ValueError on a message that ``encode`` did not make."""
    if len(message) < _LENGTH.size:
        raise ValueError("hand-off message too short")
    (length,) = _LENGTH.unpack_from(message)
    end = _LENGTH.size + length
    try:
        requests, trusted, pending, addresses, head_age = json.loads(message[_LENGTH.size : end])
        return Parcel(
            message[end:],
            int(requests),
            bool(trusted),
            bool(pending),
            dict(zip(ADDRESS_KEYS, map(str, addresses), strict=True)),
            float(head_age),
        )
    except (TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"malformed hand-off message: {exc}") from None


class Channel:
    """Both ends of the hand-off socket pair, shared by the master and every worker."""

    def __init__(self) -> None:
        self.tx, self.rx = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        for end in (self.tx, self.rx):
            end.setblocking(False)
        try:
            self.tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        except OSError:
            pass

    @property
    def fd(self) -> int:
        return self.rx.fileno()

    def send(self, sock: socket.socket, parcel: Parcel) -> bool:
        """Queue ``sock`` for a sibling; False when the channel is full or the parcel too big.

        The caller still owns its copy of the descriptor and must close it (without shutdown: the
        connection now belongs to the receiver) once this returned True.
        """
        if len(parcel.buf) > MAX_BUFFERED:
            return False
        fds = array.array("i", [sock.fileno()])
        try:
            self.tx.sendmsg([encode(parcel)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
        except OSError:  # EAGAIN (full), ENOBUFS, EMSGSIZE, ETOOMANYREFS: keep serving it here
            return False
        return True

    def receive(self) -> tuple[socket.socket, Parcel] | None:
        """One queued connection, or None when another worker was faster."""
        try:
            message, ancillary, _flags, _ = self.rx.recvmsg(_MESSAGE_MAX, _FD_SPACE)
        except (BlockingIOError, InterruptedError):
            return None
        fds = array.array("i")
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        if not fds:
            return None
        sock = socket.socket(fileno=fds[0])
        for extra in fds[1:]:
            socket.socket(fileno=extra).close()
        try:
            parcel = decode(message)
        except ValueError:
            sock.close()
            return None
        sock.setblocking(True)  # the request cycle relies on the kernel's SO_RCVTIMEO/SO_SNDTIMEO
        return sock, parcel

    def close(self) -> None:
        self.tx.close()
        self.rx.close()
