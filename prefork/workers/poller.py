"""The worker's epoll set: sources of new connections, a wake-up pipe, and parked connections.

Sources of new connections are the listening sockets and the hand-off channel (connections a sibling
could not serve soon). They are registered with EPOLLEXCLUSIVE, so a connection wakes one waiting
worker, not all of them (no thundering herd), and a worker that is not waiting (busy in a request)
is skipped by the kernel. They are unregistered while the worker is full, ahead of its siblings, or
stopping. The wake-up pipe receives a byte on every signal (``signal.set_wakeup_fd``) and from
``wake()``, which any thread may call, so ``poll()`` returns at once. Connections are added with
``watch`` (level-triggered), silenced with ``disarm``, re-armed with ``arm`` and removed with ``forget``.

Owned by the worker's event-loop thread; ``arm``, ``forget`` and ``wake`` may be called by the thread
that owns a connection.
"""

from __future__ import annotations

import os
import select
import signal
from typing import Any

LISTEN_EVENTS = select.EPOLLIN | select.EPOLLEXCLUSIVE


class Poller:
    def __init__(self, listeners: dict[int, Any], channel: Any = None) -> None:
        """``listeners``: fd -> listening socket; ``channel``: the hand-off channel, or None."""
        self.epoll = select.epoll()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        self.epoll.register(self.wake_r, select.EPOLLIN)
        self.poll = self.epoll.poll  # (timeout) -> [(fd, events)]; bound once, called every turn
        self.listeners = listeners
        self.channel_fd = channel.fd if channel is not None else -1
        self.accepting = False
        self.taking = False
        self.set_accepting(True)
        self.set_taking(channel is not None)

    def set_accepting(self, accepting: bool) -> None:
        """Watch the listening sockets or not."""
        if accepting == self.accepting:
            return
        self.accepting = accepting
        for fd in self.listeners:
            if accepting:
                self.epoll.register(fd, LISTEN_EVENTS)
            else:
                self.epoll.unregister(fd)

    def set_taking(self, taking: bool) -> None:
        """Watch the hand-off channel or not."""
        taking = taking and self.channel_fd >= 0
        if taking == self.taking:
            return
        self.taking = taking
        if taking:
            self.epoll.register(self.channel_fd, LISTEN_EVENTS)
        else:
            self.epoll.unregister(self.channel_fd)

    def drop_listener(self, fd: int) -> None:
        """Stop watching a listening socket for good (closed on a graceful stop)."""
        if self.listeners.pop(fd, None) is not None and self.accepting:
            self.epoll.unregister(fd)

    def watch(self, fd: int, events: int = select.EPOLLIN) -> None:
        self.epoll.register(fd, events)

    def arm(self, fd: int) -> None:
        """Report a connection's readable events again, after ``disarm``."""
        self.epoll.modify(fd, select.EPOLLIN)

    def disarm(self, fd: int) -> None:
        """Report nothing more for a connection until ``arm``: EPOLLONESHOT with no events, so that
        even the hang-up epoll reports unasked comes at most once."""
        self.epoll.modify(fd, select.EPOLLONESHOT)

    def forget(self, fd: int) -> None:
        """Remove a connection (before closing or handing off its descriptor: a descriptor that lives
        on in another process would otherwise keep reporting events here)."""
        try:
            self.epoll.unregister(fd)
        except (FileNotFoundError, ValueError, OSError):
            pass

    def is_wake(self, fd: int) -> bool:
        if fd != self.wake_r:
            return False
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        return True

    def wake(self) -> None:
        try:
            os.write(self.wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full: the loop is already due to wake

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self.epoll.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
