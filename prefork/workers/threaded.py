"""The threaded worker: up to ``--threads`` requests at once, served inline while the app does not block.

Threads and what they run:
- the **loop holder** runs the event loop (loop.py): it accepts, reads request heads from idle and
  slow connections in epoll, enforces the header and idle timeouts, watches ``--request-timeout``
  and writes the heartbeat. Exactly one thread holds the loop at a time (``self.loop_holder``);
- the **request threads** (``--threads`` of them) run requests. One of them may hold the loop: it
  then serves each complete head **inline**, as the sync worker does, without waking another thread;
- the **main thread** stands by while a request thread holds the loop, and takes the loop over
  once the holder has been inside one request for 5 ms, so no client waits long behind a slow
  request. It then runs the loop in **pool mode**: complete heads go to free request threads
  through ``self.jobs``, as gunicorn's gthread worker does. A holder whose inline request slept
  (blocked on I/O) for longer than 0.5 ms gives the loop to the main thread itself. After a spell
  of pool mode (50 ms, doubling up to 2 s while the app keeps blocking), a request thread tries
  serving inline again. An application that blocks (databases, upstream calls) is so served by the
  pool, one that does not by one thread with no hand-over between threads per request: the
  thread switches that cost gthread (and this worker before) about 60% of the sync worker's speed.
  relay.py moves the loop between threads.

Slow clients: a connection whose request head has been arriving for longer than ``SLOW_HEAD`` is
silenced in epoll after a partial read; housekeeping re-arms all such connections twice a
second, so their reads come in one batch. A thousand clients sending a byte a second then cost the
loop two wake-ups a second instead of a thousand, each of which would take the GIL from the
request threads.

A connection is owned by one thread at a time: registered level-triggered, as in the sync worker,
and silenced in epoll (``_silence``) if it reports an event while a request thread owns it, until
that thread gives it back. In pool mode a complete head goes to the pool only when a thread is
free; otherwise it waits in ``self.waiting`` (owned by the loop), and one that has waited
``--handoff-delay`` is handed, unparsed again, to a free sibling; heads wait first come, first
served. Back-pressure: while heads wait and a sibling has a free thread, or the worker holds
``--worker-connections`` connections none of which is idle, the loop stops accepting, and the other
workers take the new connections. With no sibling free, a new connection is accepted and waits its
turn here: left in the kernel's backlog it would wait until no head waited (under steady load, for
good).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any

from ..balance import BALANCE_INTERVAL
from ..conn import Connection
from ..http.errors import HTTPError
from ..http.parser import RequestHead
from .base import Worker
from .poller import Poller
from .relay import LEAD, NOT_COUNTED, SLOW_REQUEST, LoopRelay
from .running import RunningRequests
from .state import HOUSEKEEPING_INTERVAL

SLOW_HEAD = 0.5  # seconds a head may take to arrive before its connection is read in batches
SAMPLED_BATCHES = 8  # inline batches per count of the holder's voluntary context switches


class ThreadedWorker(RunningRequests, Worker, LoopRelay):
    multithread = True

    def run_loop(self) -> None:
        self.poller = self.make_poller()
        # complete heads for which no thread was free: (since, connection, head, bytes it came from)
        self.waiting: deque[tuple[float, Connection, RequestHead, bytes]] = deque()
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()  # (conn, head), LEAD, or None = exit
        self.running_requests: dict[int, tuple[float, RequestHead]] = {}  # thread ident -> (start, head)
        self.timed_out: set[int] = set()
        self.slow: list[Connection] = []  # heads arriving slowly: re-armed by housekeeping, not at once
        self.batches = 0  # batches of heads served inline
        self.arming = threading.Lock()  # a busy connection silenced by the loop, re-armed by its owner
        # what the holder serves next: (connection, head, bytes it came from, registered in epoll)
        self.ready: deque[tuple[Connection, RequestHead, bytes, bool]] = deque()
        threads = [
            threading.Thread(target=self._request_thread, args=(i,), name=f"request-{i}", daemon=True)
            for i in range(self.settings.threads)
        ]
        self.init_relay()  # offers the loop to the first free request thread
        for thread in threads:
            thread.start()
        try:
            self.supervise()
        finally:
            self.shutdown(threads)

    def start_drain(self, poller: Poller, adopt: Callable[[Connection], None]) -> None:
        me = threading.get_ident()
        if me != self.main_thread:
            self.return_loop(me)  # the main thread drains, in pool mode
            return
        super().start_drain(poller, adopt)

    # -- the loop ---------------------------------------------------------------------------------------

    def can_accept(self, now: float) -> bool:
        if self.waiting and self.sibling_free():
            return False  # heads wait for a thread here: new connections go to a sibling that has one
        return super().can_accept(now) and self.queued_jobs() < self.settings.threads

    def update_gates(self, now: float) -> None:
        super().update_gates(now)
        if self.loop_holder == self.main_thread:
            self.gates_due = 0.0  # pool mode: free threads and queued heads change with every request

    def can_take(self, now: float) -> bool:
        return not self.waiting and self._free_threads() > 0 and super().can_take(now)

    def before_poll(self) -> float:
        if self.waiting:
            now = monotonic()
            self._dispatch_waiting(now)
            if self.waiting:  # wake when the oldest waiting head is due for hand-off
                due = self.waiting[0][0] + self.settings.handoff_delay - now
                if due <= 0:  # overdue, and no sibling could take it: look again soon (a request
                    due = BALANCE_INTERVAL  # thread that frees up wakes the loop before that)
                return min(max(due, 0.001), HOUSEKEEPING_INTERVAL)
        return super().before_poll()

    def housekeeping(self, now: float, connections: dict[int, Connection]) -> None:
        super().housekeeping(now, connections)  # first: drops the heads past --header-timeout
        slow, self.slow = self.slow, []
        for conn in slow:  # their next bytes come in the next poll, together
            if connections.get(conn.fd) is conn:
                self.poller.arm(conn.fd)
        self._check_request_timeouts(now)
        if self.loop_holder == self.main_thread:
            self.maybe_lend(now, backlog=bool(self.waiting) or self.queued_jobs() > 0 or self._free_threads() <= 0)

    def adopt(self, conn: Connection) -> None:
        self.connections[conn.fd] = conn
        inline = self.loop_holder != self.main_thread
        if not inline:  # served inline, it is registered afterwards, and only if kept alive
            self.poller.watch(conn.fd)
        self._route(conn, registered=not inline)

    def readable(self, conn: Connection) -> None:
        if conn.busy:
            self._silence(conn)
            return
        if conn.recv_nowait():
            self._route(conn)
        else:
            self.forget(conn)

    def _route(self, conn: Connection, registered: bool = True) -> None:
        """A complete head goes to ``self.ready`` when a request thread holds the loop (the caller: only
        the holder routes; it serves them inline once it has read the whole batch of events), else to
        the pool; an incomplete one waits for more bytes."""
        raw = conn.buf if type(conn.buf) is bytes else bytes(conn.buf)
        try:
            head = self.next_head(conn)
            if head is None:
                if not registered:
                    self.poller.watch(conn.fd)
                self._park(conn)
                return
        except HTTPError as exc:
            self.reject(conn, exc)
            self.forget(conn)
            return
        conn.busy = True  # a new loop holder leaves it alone
        if self.loop_holder != self.main_thread:
            self.ready.append((conn, head, raw, registered))
        else:
            self._dispatch(conn, head, raw)

    def serve_ready(self) -> None:
        """The loop holder's complete heads: a request thread serves them inline one after the other
        (and what is pipelined behind each) while it keeps the loop, as the sync worker does; the
        main thread, which takes the loop meanwhile, gives those left to the pool. The lines around
        ``serve`` are relay.py's protocol (see ``wake_standby``), written out here: they run for every
        request."""
        ready = self.ready
        me = threading.get_ident()
        if me == self.main_thread:
            while ready:
                conn, head, raw, registered = ready.popleft()
                if not registered:
                    self.poller.watch(conn.fd)
                self._dispatch(conn, head, raw)
            return
        serve = self.serve_connection
        entry = self.lead_entry
        # Did a slow request sleep (end_inline)? Counted before one batch in SAMPLED_BATCHES, as the
        # count costs a system call and a batch is often a single request; a blocking app shows
        # within a few batches, and a request that sleeps over 5 ms is taken over in any case.
        self.batches += 1
        sleeps = self.count_sleeps() if not self.batches % SAMPLED_BATCHES else NOT_COUNTED
        while ready:
            conn, head, _, registered = ready.popleft()
            started = monotonic()
            self.inline_since = self.last_inline = started
            if self.standby_sleeping:  # read after the store above
                self.wake_standby()
            try:
                keep = serve(conn, head, entry)
            except Exception:
                self.log.exception("Unexpected error serving a connection")
                keep = False
            self.inline_since = 0.0
            if keep and not registered:
                self.poller.watch(conn.fd)
            checked = self.taking or self.loop_holder != me or monotonic() - started > SLOW_REQUEST
            if checked and not self.end_inline(me, started, sleeps):
                self._give_back(conn, keep)  # as a request thread: the main thread holds the loop now
                return
            if not keep:
                self.forget(conn)
            elif conn.disarmed:  # not expected inline: only a loop holder silences, and this one served
                self._give_back(conn, keep)
            else:
                conn.busy = False  # still registered: nobody else polled while it ran (relay.py)
                if conn.head_since:
                    self._park(conn)

    def _park(self, conn: Connection) -> None:
        """Wait for ``conn``'s next bytes (loop holder only): left in epoll, or silenced there and
        kept with the slow heads, which housekeeping re-arms together."""
        if conn.head_since and monotonic() - conn.head_since > SLOW_HEAD:
            self.poller.disarm(conn.fd)
            self.slow.append(conn)

    def _silence(self, conn: Connection) -> None:
        """An event on a connection a request thread owns (more bytes, or a hang-up): connections are
        registered level-triggered, so epoll would report it at every turn; silence it until its owner
        gives it back (``_give_back`` re-arms it). Level-triggered, a connection served inline and
        kept alive needs no epoll call at all."""
        with self.arming:
            if conn.busy and not conn.disarmed:
                conn.disarmed = True
                self.poller.disarm(conn.fd)

    def _dispatch(self, conn: Connection, head: RequestHead, raw: bytes) -> None:
        """To a free request thread, or to ``self.waiting`` (``raw``: the bytes the head came from), and
        behind the heads already there: first come, first served (``_dispatch_waiting``)."""
        if self.channel is None or (not self.waiting and self._free_threads() > 0):
            self.jobs.put((conn, head))
        else:
            self.waiting.append((monotonic(), conn, head, raw))

    def _free_threads(self) -> int:
        return self.settings.threads - len(self.running_requests) - self.queued_jobs()

    def _dispatch_waiting(self, now: float) -> None:
        """Waiting heads go to threads as they free up; those that waited too long, to a sibling."""
        waiting = self.waiting
        while waiting and self._free_threads() > 0:
            _, conn, head, _ = waiting.popleft()
            self.jobs.put((conn, head))
        delay = self.settings.handoff_delay
        if not (waiting and now - waiting[0][0] >= delay and self.sibling_free()):
            return
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

    # -- request threads ------------------------------------------------------------------------------

    def _request_thread(self, number: int) -> None:
        entry = self.board.entry(self.index, number)  # this thread's place in the scoreboard
        jobs = self.jobs
        while (job := jobs.get()) is not None:
            if job is LEAD:
                self.lead(entry)
                continue
            conn, head = job
            try:
                keep = self.serve_connection(conn, head, entry)
            except Exception:
                self.log.exception("Unexpected error serving a connection")
                keep = False
            self._give_back(conn, keep)

    def _give_back(self, conn: Connection, keep: bool) -> None:
        """A request thread is done with ``conn``: back to epoll, or closed."""
        if keep:  # the response said keep-alive, even if the worker began draining since
            with self.arming:  # re-armed before it stops being busy: _silence cannot interleave
                if conn.disarmed:
                    conn.disarmed = False
                    self.poller.arm(conn.fd)
                conn.busy = False
        else:
            self.forget(conn)
        if self.waiting or (self.alive and not self.poller.accepting and not (keep and self.queued_jobs())):
            # Capacity freed and nothing else will wake the loop soon: a connection given back
            # to epoll does, when its next request arrives, and the loop re-checks then.
            self.poller.wake()
