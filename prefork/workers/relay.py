"""The threaded worker's loop relay: which thread runs the event loop, and when it changes hands.

Mixed into ``ThreadedWorker`` (threaded.py), whose docstring says what the threads do. Here: a
request thread given the LEAD job holds the loop and serves requests inline (threaded.py's
``serve_ready``, with ``wake_standby`` and ``end_inline``); the main thread stands by and takes the
loop (pool mode) from a holder that stays asleep inside one request for TAKEOVER_DELAY, or is given
it by a holder whose requests blocked; after a spell of pool mode it lends the loop to a request
thread again.

Who may move the loop: only the main thread takes it (``_stand_by``, under ``self.role``), only the
holder gives it back. The holder's side of each inline request uses no lock (one would cost every
request): it clears ``inline_since``, then waits while ``taking`` is up, then reads ``loop_holder``;
the main thread raises ``taking``, then takes the loop only if ``inline_since`` still names the
request it saw. Attribute stores and loads are atomic and ordered under the GIL, so either the main
thread sees the request ended, or the holder sees it at work and waits for its verdict. The same
order (``inline_since`` then ``standby_sleeping`` on one side, the reverse on the other) keeps the
main thread from falling asleep while an inline request runs.

No signal handler touches the relay's locks or ``standby_event``: a handler runs on the main thread,
possibly inside ``standby_event.wait`` while it holds the event's own lock, and ``set`` would then
wait for itself for good. On TERM the wake-up pipe wakes the holder's poll; the holder starts the
drain by giving the loop back (``return_loop``), which wakes the main thread.
"""

from __future__ import annotations

import queue
import threading
from resource import RUSAGE_THREAD, getrusage
from time import monotonic, sleep
from typing import Any

from .. import scoreboard as sb
from .state import WorkerState

TAKEOVER_DELAY = 0.005  # seconds an inline request may run before the main thread takes the loop
LONG_INLINE = 0.05  # seconds after which the main thread takes the loop from a holder that runs
SLOW_REQUEST = 0.0005  # an inline request that slept and took longer than this blocked: pool mode
# Seconds in pool mode before a request thread tries serving inline again: doubled each time inline
# serving lasted less than STEADY_INLINE (the app blocks), back to the minimum after a steady run or
# when the cause was not the app (a request slowed by a busy machine costs only the minimum).
POOL_HOLD_MIN = 0.05
POOL_HOLD_MAX = 2.0
STEADY_INLINE = 1.0
STANDBY_IDLE = 1.0  # seconds without inline requests after which the standby waits to be woken
PENDING = -1  # loop_holder while the LEAD job is on its way to a request thread
STOPPED = -2  # loop_holder once the worker shuts its threads down
LEAD = ("lead", None)  # the job that makes a request thread the loop holder
ASLEEP, LONG, STOPPING = "asleep", "long", "stopping"  # why the main thread takes the loop
NOT_COUNTED = 1 << 62  # "sleeps" for a batch not counted: no request of it is judged blocked


class LoopRelay(WorkerState):
    """Which thread holds the loop; see the module docstring."""

    jobs: queue.SimpleQueue[Any]  # threaded.py: (conn, head), LEAD, or None = exit
    event_loop: Any  # loop.py

    def init_relay(self) -> None:
        self.main_thread = threading.get_ident()
        self.role = threading.Lock()  # the main thread's decisions, LEAD taken, loop given back
        self.taking = False  # the main thread is deciding whether to take the loop
        self.inline_since = 0.0  # when the request the loop holder serves inline started; 0 = none
        self.last_inline = 0.0  # when the last inline request started
        self.pool_since = -POOL_HOLD_MAX  # when the main thread last took the loop (pool mode)
        self.pool_hold = POOL_HOLD_MIN
        self.standby_sleeping = False  # the main thread waits to be woken, not polling
        self.standby_event = threading.Event()
        self.standby_turns = 0  # times the standing-by main thread woke (and took the GIL)
        self.counted_turns = 0  # standby_turns when the holder last counted its sleeps
        self.lead_entry = self.entry  # the scoreboard entry of the thread holding the loop
        self.lead_native_id = 0  # its kernel thread id (its state is in /proc)
        self.lead_queued = False  # a LEAD job is in self.jobs, no request thread has taken it yet
        self.lend(monotonic())
        self.offer_lead()

    def supervise(self) -> None:
        """Main thread: run the loop in pool mode while it holds it, stand by while a request thread does."""
        main = self.main_thread
        while True:
            if self.loop_holder == main:
                # housekeeping decides when to lend the loop again
                self.next_housekeeping = min(self.next_housekeeping, self.pool_since + self.pool_hold)
                if self.ready:  # heads the last holder had read but not served: to the pool
                    self.serve_ready()
                self.event_loop(self.poller, main)
                if self.loop_holder == main:
                    return  # the loop ended: the worker drained
                if self.loop_holder == PENDING:  # lent at housekeeping: offered once this loop is left
                    self.offer_lead()
            else:
                self._stand_by()

    def shutdown(self, threads: list[threading.Thread]) -> None:
        """Main thread, once the loop ended (or on a fast stop): let queued and running requests
        finish (bounded by the drain deadline), then stop the threads."""
        with self.role:
            self.loop_holder = STOPPED  # a request thread holding the loop (fast stop) leaves it
        self.poller.wake()
        for _ in threads:
            self.jobs.put(None)
        deadline = max(self.drain_deadline, monotonic() + 1.0)
        for thread in threads:
            thread.join(max(0.0, deadline - monotonic()))
        for conn in list(self.connections.values()):
            conn.close()
        self.poller.close()

    def _stand_by(self) -> None:
        """Main thread: wait until the loop is given back, or take it from a holder that has been inside
        one request for TAKEOVER_DELAY (or when the worker stops), or when no request thread took the
        LEAD job within TAKEOVER_DELAY (all of them busy). Polls only while inline requests run; after
        STANDBY_IDLE without any, it sleeps until the holder's next inline request wakes it."""
        main = self.main_thread
        event = self.standby_event
        while True:
            with self.role:
                holder = self.loop_holder
                if holder == main:
                    return
                now = monotonic()
                since = self.lent_at if holder == PENDING else self.inline_since
                verdict = (STOPPING if not self.alive else self._overdue(holder, now - since)) if since else ""
                if verdict:
                    self.taking = True
                    try:
                        if holder == PENDING or self.inline_since == since:
                            # a request thread still given LEAD will see it and return
                            self._to_pool(now)
                            self._judge(blocked=verdict == ASLEEP)
                            return
                    finally:
                        self.taking = False
                sleeping = holder != PENDING and now - self.last_inline > STANDBY_IDLE
                self.standby_sleeping = sleeping
                if sleeping and self.inline_since:  # an inline request began meanwhile
                    self.standby_sleeping = sleeping = False
            event.wait(None if sleeping else TAKEOVER_DELAY)
            event.clear()
            self.standby_turns += 1

    def offer_lead(self) -> None:
        """Main thread: put the LEAD job in the queue, unless one is there already. A LEAD no thread took
        in time (all busy) stays queued after the main thread took the loop back; lent again, the loop
        goes with that one. A second would outlive it: with one request thread, which then holds the
        loop and takes no jobs, it would stay queued for good, and the queue would look full."""
        with self.role:
            if self.lead_queued:
                return
            self.lead_queued = True
        self.jobs.put(LEAD)

    def queued_jobs(self) -> int:
        """Requests queued for the request threads (a LEAD job is not one)."""
        return max(0, self.jobs.qsize() - self.lead_queued)

    def lead(self, entry: sb.Entry) -> None:
        """Request thread, given the LEAD job: run the loop, serving requests inline, until it is taken."""
        me = threading.get_ident()
        with self.role:
            self.lead_queued = False
            if self.loop_holder != PENDING:
                return  # the main thread took the loop meanwhile
            self.loop_holder = me
        self.lead_entry = entry
        self.lead_native_id = threading.get_native_id()
        try:
            self.event_loop(self.poller, me)
        except Exception:
            self.log.exception("Unexpected error in the event loop; worker %d stops", self.index)
            self.alive = False
            self.return_loop(me)

    def _overdue(self, holder: int, inline_for: float) -> str:
        """Whether the main thread takes the loop from ``holder`` (or from the LEAD job that no thread
        took), in its inline request for ``inline_for`` seconds: after TAKEOVER_DELAY if it sleeps
        (ASLEEP: blocked on I/O), after LONG_INLINE if it runs (LONG: a long computation, or a
        process preempted on a busy machine, which resumes soon on its own); "" = not yet."""
        if inline_for <= TAKEOVER_DELAY:
            return ""
        if holder == PENDING or inline_for > LONG_INLINE:
            return LONG
        try:
            with open(f"/proc/self/task/{self.lead_native_id}/stat", "rb") as stat:
                state = stat.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            return LONG
        return "" if state == b"R" else ASLEEP

    def return_loop(self, me: int) -> None:
        """The holder gives the loop to the main thread (pool mode, or the drain)."""
        with self.role:
            if self.loop_holder == me:
                self.loop_holder = self.main_thread
        self.standby_event.set()

    def _to_pool(self, now: float) -> None:
        """The main thread takes the loop (pool mode); ``self.role`` held."""
        self.pool_since = now
        self.loop_holder = self.main_thread

    def _judge(self, blocked: bool) -> None:
        """How long the next spells of pool mode last, after inline serving ended because a request
        ``blocked`` (or was only slowed by a busy machine); ``self.role`` held."""
        if blocked and self.pool_since - self.lent_at < STEADY_INLINE:
            self.pool_hold = min(self.pool_hold * 2, POOL_HOLD_MAX)
        else:
            self.pool_hold = POOL_HOLD_MIN

    def lend(self, now: float) -> None:
        """The loop goes to the next free request thread; ``supervise`` offers it (the LEAD job) once
        the main thread has left its loop, so that two threads never run it at once."""
        with self.role:
            self.loop_holder = PENDING
            self.lent_at = now

    def maybe_lend(self, now: float, backlog: bool) -> None:
        """Main thread, at housekeeping: ``pool_hold`` after it took the loop, a request thread tries
        serving inline again. Only inline requests tell whether the app blocks: in the pool, a
        request's time also counts its waits for the GIL. Not while there is a ``backlog`` (heads
        queued or waiting for a thread, or none free): a request thread holding the loop takes no
        jobs, so with one request thread a head queued behind the LEAD job would wait for good."""
        if self.alive and not backlog and now - self.pool_since >= self.pool_hold:
            self.lend(now)

    def wake_standby(self) -> None:
        """An inline request begins while the main thread sleeps: it polls again (``_stand_by``).

        The holder's side, around each inline request (threaded.py ``serve_ready``): store
        ``inline_since`` (and ``last_inline``), then read ``standby_sleeping`` and call this if it is
        up; after the request, ``end_inline``, or, on the fast path, clear ``inline_since`` and call
        ``end_inline`` only if ``taking`` is up, the loop was taken or the request was slow."""
        self.standby_sleeping = False
        self.standby_event.set()

    def count_sleeps(self) -> int:
        """The holder, before a batch of inline requests: how many times it went to sleep so far."""
        self.counted_turns = self.standby_turns
        return voluntary_switches()

    def end_inline(self, me: int, started: float, sleeps: int) -> bool:
        """The holder's inline request ended: whether it still holds the loop. A request that took over
        SLOW_REQUEST and in which the thread went to sleep (its count of voluntary context switches
        passed ``sleeps``, from ``count_sleeps`` before its batch of requests; NOT_COUNTED: the batch
        was not counted) blocked: the worker goes to pool mode. A request slowed only by preemption
        (a busy machine) or a collection does not count, nor one during which the standing-by main
        thread woke: the holder then slept waiting for the GIL the main thread had taken, not for
        the application."""
        self.inline_since = 0.0
        while self.taking:  # rare: the main thread is deciding right now
            sleep(0.0001)
        if self.loop_holder != me:
            return False  # taken over during this request
        now = monotonic()
        if (
            now - started > SLOW_REQUEST
            and sleeps != NOT_COUNTED
            and self.standby_turns == self.counted_turns
            and voluntary_switches() > sleeps  # last: a system call
        ):
            with self.role:
                self._to_pool(now)
                self._judge(blocked=True)
            self.standby_event.set()
            return False
        return True


def voluntary_switches() -> int:
    """How many times the calling thread went to sleep so far (voluntary context switches)."""
    return getrusage(RUSAGE_THREAD).ru_nvcsw
