"""The pool's balance rules, as pure functions of numbers a worker reads from the scoreboard.

Called by a worker's event loop (no system calls here, so the rules have fast unit tests):
- ``should_accept``: a worker watches the listening sockets only while it holds no more connections
  than the least-loaded sibling that could take one now, plus ``ACCEPT_SLACK``. Every worker with the
  fewest connections keeps accepting, so some worker always accepts; siblings that are saturated
  (a sync worker inside the application, a threaded worker with every thread busy) do not count.
- ``surplus``: kept-alive connections stay with the worker that accepted them, so a worker holding
  more than its share (connections opened together, or moved to it while a sibling was busy) gives
  half of its lead over the least-loaded sibling back through the hand-off channel, idle ones only.
- ``reclaim_candidate``: at ``--worker-connections``, the idle keep-alive connection that has waited
  longest makes room for a new client.
- ``write_too_slow``: the minimum-rate rule for a response a client reads slowly.
- ``client_io_timeout``: the kernel timeout of one blocking client read or write, kept below the
  master's ``--timeout`` so that a slow client gets its 408 or close from the worker before the master
  could take the worker for hung (the worker beats its heartbeat before each such call).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Connections a worker may hold above its least-loaded sibling. 1 keeps a worker that serves one
# short-lived connection at a time (Connection: close) from toggling its epoll registrations.
ACCEPT_SLACK = 1
BALANCE_INTERVAL = 0.05  # seconds between re-reads of the siblings' loads


def should_accept(mine: int, siblings: Iterable[int], slack: int = ACCEPT_SLACK) -> bool:
    """Whether a worker holding ``mine`` connections should watch the listening sockets."""
    if mine <= slack:
        return True
    return mine <= min(siblings, default=mine) + slack


def surplus(mine: int, siblings: list[int], slack: int = ACCEPT_SLACK) -> int:
    """How many idle connections a worker holding ``mine`` should hand to its siblings."""
    if not siblings:
        return 0
    lead = mine - min(siblings)
    return lead // 2 if lead > 2 * slack else 0


def reclaim_candidate(connections: Iterable[Any]) -> Any | None:
    """The connection to close to make room: idle between requests (kept alive, nothing pending, no
    thread owns it), idle the longest. None when every connection is busy or mid-request."""
    best = None
    for conn in connections:
        if conn.busy or conn.head_since or conn.buf or not conn.requests:
            continue
        if best is None or conn.idle_since < best.idle_since:
            best = conn
    return best


def write_too_slow(elapsed: float, sent: int, grace: float, min_rate: float) -> bool:
    """A client that has been slow to read for ``elapsed`` seconds, taking ``sent`` bytes meanwhile,
    is dropped once past ``grace`` its average rate is below ``min_rate`` bytes per second."""
    return bool(min_rate) and elapsed > grace and sent < min_rate * elapsed


IO_SHARE_OF_TIMEOUT = 0.8


def client_io_timeout(configured: float, worker_timeout: float) -> float:
    """The effective --read-timeout / --write-timeout (0 = none) under --timeout (0 = none)."""
    if not worker_timeout:
        return configured
    cap = worker_timeout * IO_SHARE_OF_TIMEOUT
    return cap if not configured or configured > cap else configured
