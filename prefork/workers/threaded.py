"""The threaded worker: a bounded pool of request threads fed by one event loop.

Threads and what they run:
- the **event-loop thread** (the process's main thread) runs ``run_loop`` and everything it calls
  except ``_request_thread``: it accepts, reads request heads from idle and slow connections in
  epoll, hands a connection to the pool only once a head is complete, enforces the header and idle
  timeouts, watches ``--request-timeout`` and writes the heartbeat;
- the **request threads** run ``_request_thread``: ``serve_connection`` for the request they were
  given (and any request pipelined behind it), then give the connection back to epoll or close it.

Slow clients: a connection whose request head has been arriving for longer than ``SLOW_HEAD`` is
not re-armed in epoll after a partial read; housekeeping reads all such connections in one pass twice
a second. A thousand clients sending a byte a second then cost the loop two wake-ups a second instead
of a thousand, each of which would take the GIL from the request threads.

A connection is owned by one thread at a time: registered with EPOLLONESHOT, it cannot fire again
until the request thread re-arms it. A complete head goes to the pool only when a thread is free;
otherwise it waits in ``self.waiting`` (owned by the loop), and one that has waited ``--handoff-delay``
is handed, unparsed again, to a free sibling. Back-pressure: when every thread is busy and heads
wait, or the worker holds ``--worker-connections`` connections none of which is idle, the loop stops
accepting; the kernel backlog and the other workers take the new connections.
"""

from __future__ import annotations

import queue
import select
import sys
import threading
import traceback
from collections import deque
from time import monotonic

from .. import scoreboard as sb
from ..conn import Connection
from ..http.errors import HTTPError
from ..http.parser import RequestHead
from .base import Worker
from .state import HOUSEKEEPING_INTERVAL

SLOW_HEAD = 0.5  # seconds a head may take to arrive before its connection is read in batches


class ThreadedWorker(Worker):
    multithread = True

    def run_loop(self) -> None:
        self.poller = self.make_poller()
        # complete heads for which no thread was free: (since, connection, head, bytes it came from)
        self.waiting: deque[tuple[float, Connection, RequestHead, bytes]] = deque()
        self.jobs: queue.SimpleQueue[tuple[Connection, RequestHead] | None] = queue.SimpleQueue()
        self.running_requests: dict[int, tuple[float, RequestHead]] = {}  # thread ident -> (start, head)
        self.timed_out: set[int] = set()
        self.slow: list[Connection] = []  # heads arriving slowly: read by housekeeping, not epoll
        threads = [
            threading.Thread(target=self._request_thread, args=(i,), name=f"request-{i}", daemon=True)
            for i in range(self.settings.threads)
        ]
        for thread in threads:
            thread.start()
        try:
            self.event_loop(self.poller)
        finally:
            self._shutdown(threads)

    # -- event-loop thread ----------------------------------------------------------------------------

    def can_accept(self, now: float) -> bool:
        return not self.waiting and super().can_accept(now) and self.jobs.qsize() < self.settings.threads

    def update_gates(self, now: float) -> None:
        super().update_gates(now)
        self.gates_due = 0.0  # free threads and queued heads change with every request: look each turn

    def can_take(self, now: float) -> bool:
        return not self.waiting and self._free_threads() > 0 and super().can_take(now)

    def before_poll(self) -> float:
        if self.waiting:
            now = monotonic()
            self._dispatch_waiting(now)
            if self.waiting:  # wake when the oldest waiting head is due for hand-off
                due = self.waiting[0][0] + self.settings.handoff_delay - now
                return min(max(due, 0.001), HOUSEKEEPING_INTERVAL)
        return super().before_poll()

    def housekeeping(self, now: float, connections: dict[int, Connection]) -> None:
        super().housekeeping(now, connections)  # first: drops the heads past --header-timeout
        slow, self.slow = self.slow, []
        for conn in slow:
            if connections.get(conn.fd) is conn:
                self.readable(conn)
        self._check_request_timeouts(now)

    def adopt(self, conn: Connection) -> None:
        self.connections[conn.fd] = conn
        # Registered disarmed: EPOLLONESHOT also silences the hang-up that epoll reports unasked
        # while a request thread owns the connection. _wait_or_dispatch arms it when it waits.
        self.poller.watch(conn.fd, select.EPOLLONESHOT)
        self._wait_or_dispatch(conn)

    def readable(self, conn: Connection) -> None:
        if conn.busy:
            return  # a busy one can only report a hang-up; its thread will see it
        if conn.recv_nowait():
            self._wait_or_dispatch(conn)
        else:
            self.forget(conn)

    def _wait_or_dispatch(self, conn: Connection) -> None:
        """Hand ``conn`` to the pool if its head is complete, else re-arm it in epoll."""
        raw = conn.buf if type(conn.buf) is bytes else bytes(conn.buf)
        try:
            head = self.next_head(conn)
        except HTTPError as exc:
            self.reject(conn, exc)
            self.forget(conn)
            return
        if head is None:
            if conn.head_since and monotonic() - conn.head_since > SLOW_HEAD:
                self.slow.append(conn)
            else:
                self.poller.arm(conn.fd)
            return
        conn.busy = True
        if self.channel is None or self._free_threads() > 0:
            self.jobs.put((conn, head))
        else:
            self.waiting.append((monotonic(), conn, head, raw))

    def _free_threads(self) -> int:
        return self.settings.threads - len(self.running_requests) - self.jobs.qsize()

    def _dispatch_waiting(self, now: float) -> None:
        """Waiting heads go to threads as they free up; those that waited too long, to a sibling."""
        waiting = self.waiting
        while waiting and self._free_threads() > 0:
            _, conn, head, _ = waiting.popleft()
            self.jobs.put((conn, head))
        delay = self.settings.handoff_delay
        while waiting and now - waiting[0][0] >= delay:
            _, conn, _, raw = waiting[0]
            rest = conn.buf
            conn.buf, conn.busy = raw, False  # unparsed: the sibling reads the head from the bytes
            if not self.hand_off(conn, now):
                conn.buf, conn.busy = rest, True  # the channel is full: it waits here for a thread
                break
            waiting.popleft()

    def evacuate(self, now: float, keep: Connection | None = None) -> None:
        for _, conn, _, raw in self.waiting:
            conn.buf, conn.busy = raw, False
        self.waiting.clear()
        super().evacuate(now, keep)

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

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        """Let queued and running requests finish (bounded by the drain deadline), then stop."""
        for _ in threads:
            self.jobs.put(None)
        deadline = max(self.drain_deadline, monotonic() + 1.0)
        for thread in threads:
            thread.join(max(0.0, deadline - monotonic()))
        for conn in list(self.connections.values()):
            conn.close()
        self.poller.close()

    # -- request threads ------------------------------------------------------------------------------

    def _request_thread(self, number: int) -> None:
        entry = self.board.entry(self.index, number)  # this thread's place in the scoreboard
        jobs = self.jobs
        while (job := jobs.get()) is not None:
            conn, head = job
            try:
                keep = self.serve_connection(conn, head, entry)
            except Exception:
                self.log.exception("Unexpected error serving a connection")
                keep = False
            if keep:  # the response said keep-alive, even if the worker began draining since
                conn.busy = False
                self.poller.arm(conn.fd)
            else:
                self.forget(conn)
            if self.waiting or (self.alive and not self.poller.accepting and not (keep and jobs.qsize())):
                # Capacity freed and nothing else will wake the loop soon: a connection given back
                # to epoll does, when its next request arrives, and the loop re-checks then.
                self.poller.wake()

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
