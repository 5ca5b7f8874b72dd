"""systemd integration, used by the master only: socket activation and sd_notify.

- Socket activation: ``LISTEN_FDS``/``LISTEN_PID`` name listening sockets passed as fds 3, 4, …;
  they are used as given, never re-bound (sd_listen_fds(3)).
- Notifications: datagrams to ``NOTIFY_SOCKET`` (a path, or an abstract name written with ``@``):
  READY=1, RELOADING=1 with MONOTONIC_USEC, STOPPING=1, STATUS=…, WATCHDOG=1, MAINPID= (sd_notify(3)).
The variables are removed from the environment so that workers and the application do not act on
them; the master keeps what it read.
"""

from __future__ import annotations

import os
import socket
import time

LISTEN_FDS_START = 3


def listen_fds() -> list[int]:
    """The fds systemd passed to this process, or [] (and the LISTEN_* variables removed)."""
    count = os.environ.pop("LISTEN_FDS", "")
    pid = os.environ.pop("LISTEN_PID", "")
    os.environ.pop("LISTEN_FDNAMES", None)
    if not count.isdigit() or (pid and pid != str(os.getpid())):
        return []
    return list(range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)))


class Notifier:
    """Sends sd_notify messages when NOTIFY_SOCKET is set; otherwise every call does nothing."""

    def __init__(self) -> None:
        self.address = os.environ.pop("NOTIFY_SOCKET", "")
        watchdog_usec = os.environ.pop("WATCHDOG_USEC", "")
        watchdog_pid = os.environ.pop("WATCHDOG_PID", "")
        self.watchdog_interval = 0.0
        if watchdog_usec.isdigit() and watchdog_pid in ("", str(os.getpid())):
            self.watchdog_interval = int(watchdog_usec) / 1e6 / 2  # ping at half the deadline
        self.next_watchdog = 0.0
        self.sock = None
        if self.address:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def notify(self, *fields: str) -> None:
        if self.sock is None:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self.sock.sendto("\n".join(fields).encode(), target)
        except OSError:
            pass  # systemd gone or the socket full: notifications are advisory

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        self.notify("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self, status: str) -> None:
        self.notify("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def watchdog(self, now: float) -> None:
        if self.watchdog_interval and now >= self.next_watchdog:
            self.next_watchdog = now + self.watchdog_interval
            self.notify("WATCHDOG=1")
