"""The worker's epoll set: listening sockets, a wake-up pipe, and parked connections.

Listening sockets are registered with EPOLLEXCLUSIVE, so an incoming connection wakes one worker,
not all of them (no thundering herd); they are unregistered while the worker is full or stopping.
The wake-up pipe receives a byte on every signal (``signal.set_wakeup_fd``) and from ``wake()``, which
any thread may call, so ``poll()`` returns at once. Owned by the worker's event-loop thread.
"""

from __future__ import annotations

import os
import select
import signal

from ..sockets import Listener

LISTEN_EVENTS = select.EPOLLIN | select.EPOLLEXCLUSIVE


class Poller:
    def __init__(self, listeners: list[Listener]) -> None:
        self.epoll = select.epoll()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        self.epoll.register(self.wake_r, select.EPOLLIN)
        self.listeners = {listener.sock.fileno(): listener for listener in listeners}
        self.accepting = False
        self.set_accepting(True)

    def set_accepting(self, accepting: bool) -> None:
        if accepting == self.accepting:
            return
        self.accepting = accepting
        for fd in self.listeners:
            if accepting:
                self.epoll.register(fd, LISTEN_EVENTS)
            else:
                self.epoll.unregister(fd)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        return self.epoll.poll(timeout)

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
