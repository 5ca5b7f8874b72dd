"""gunicorn's statsd metrics, with the same names and types, over UDP (or a unix datagram socket).

Created in the master when ``--statsd-host`` is set and inherited by the workers (a datagram socket:
each process sends on its own). Names, prefixed with ``--statsd-prefix``:
- ``gunicorn.requests`` (counter) and ``gunicorn.request.duration`` (timer, ms), per request;
- ``gunicorn.request.status.<code>`` (counter), per request;
- ``gunicorn.workers`` (gauge), from the master when the number of workers changes;
- ``gunicorn.log.<level>`` (counter) for each error-log record of level warning or above.
The socket is non-blocking: a metric that cannot be sent at once is dropped, never waited for.
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Any


class Statsd:
    def __init__(self, address: str, prefix: str = "", tags: str = "") -> None:
        if address.startswith("unix:"):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.target: Any = address[5:]
        else:
            host, _, port = address.rpartition(":")
            host = host.strip("[]") or "localhost"
            family, _, _, _, self.target = socket.getaddrinfo(host, int(port or 8125), type=socket.SOCK_DGRAM)[0]
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.prefix = re.sub(r"^(.+[^.]+)\.*$", r"\g<1>.", prefix) if prefix else ""
        self.tags = f"|#{tags}" if tags else ""

    def send(self, name: str, value: float, kind: str) -> None:
        line = f"{self.prefix}{name}:{value:g}|{kind}{self.tags}".encode()
        try:
            self.sock.sendto(line, self.target)
        except OSError:
            pass  # full buffer, no listener: a metric is never worth a blocked request

    def request(self, status: int, seconds: float) -> None:
        self.send("gunicorn.request.duration", round(seconds * 1000, 3), "ms")
        self.send("gunicorn.requests", 1, "c")
        if status:
            self.send(f"gunicorn.request.status.{status}", 1, "c")

    def workers(self, count: int) -> None:
        self.send("gunicorn.workers", count, "g")


class StatsdLogHandler(logging.Handler):
    """Counts error-log records of level warning and above as ``gunicorn.log.<level>``."""

    def __init__(self, statsd: Statsd) -> None:
        super().__init__(logging.WARNING)
        self.statsd = statsd

    def emit(self, record: logging.LogRecord) -> None:
        level = "exception" if record.exc_info else record.levelname.lower()
        self.statsd.send(f"gunicorn.log.{level}", 1, "c")
