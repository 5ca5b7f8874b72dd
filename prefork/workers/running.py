"""The threaded worker's requests in progress: what they tell the master and the operator.

Mixed into ``ThreadedWorker`` (threaded.py). ``run_request`` records each request in
``self.running_requests`` while it runs (any request thread, inline or from the pool); from that
the loop holder derives the heartbeat (``liveness``), enforces ``--request-timeout`` and writes the
process title.
"""

from __future__ import annotations

import sys
import threading
import traceback
from time import monotonic

from .. import scoreboard as sb
from ..conn import Connection
from ..http.parser import RequestHead
from .state import WorkerState


class RunningRequests(WorkerState):
    """Requests in progress, by thread."""

    running_requests: dict[int, tuple[float, RequestHead]]  # thread ident -> (start, head)
    timed_out: set[int]  # threads whose request passed --request-timeout (reported once)

    def run_request(self, conn: Connection, head: RequestHead, entry: sb.Entry) -> bool:
        ident = threading.get_ident()
        started = monotonic()
        self.running_requests[ident] = (started, head)
        entry.started(started, (head.method + " " + head.target).encode("latin-1"))
        try:
            return self.handler.handle(conn, head)
        finally:
            entry.finished()
            del self.running_requests[ident]

    def liveness(self, now: float) -> float:
        """The worker is alive while a thread is free or some request started within --timeout.

        A heartbeat from this loop alone would hide a worker whose every thread is stuck.
        """
        running = list(self.running_requests.values())
        if len(running) < self.settings.threads:
            return now
        return max(started for started, _ in running)

    def _check_request_timeouts(self, now: float) -> None:
        limit = self.settings.request_timeout
        if not limit:
            return
        frames = None
        for ident, (started, head) in list(self.running_requests.items()):
            if now - started <= limit or ident in self.timed_out:
                continue
            self.timed_out.add(ident)
            frames = frames or sys._current_frames()
            frame = frames.get(ident)
            stack = "".join(traceback.format_stack(frame)) if frame else "(no stack)"
            self.log.error(
                "Request timeout: %s %s has run for %.1fs (limit %ss); recycling worker %d. Stack of its thread:\n%s",
                head.method,
                head.target,
                now - started,
                limit,
                self.index,
                stack.rstrip(),
            )
            self.alive = False  # graceful: other threads finish, the master starts a replacement
            self.handler.reuse_connections = False

    def describe(self, now: float) -> str:
        running = list(self.running_requests.values())
        if not running:
            return f"idle, {self.requests} requests"
        started, head = min(running, key=lambda item: item[0])
        return (
            f"busy {len(running)}/{self.settings.threads} threads, oldest {head.method} "
            f"{head.target[:60]} {now - started:.1f}s{self.handoff_summary()}"
        )
