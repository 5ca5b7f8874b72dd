"""The threaded worker's loop relay (prefork/workers/relay.py): its decisions, without processes.

When the main thread takes the loop from a request thread (``_overdue``), how long pool mode lasts
(``_judge``), and whether an inline request blocked (``end_inline``). The behaviour they add up to is
tested through real servers in test_threaded.py.
"""

from __future__ import annotations

import queue
import threading
import time

from helpers import eventually
from prefork.workers import relay
from prefork.workers.relay import (
    ASLEEP,
    LEAD,
    LONG,
    LONG_INLINE,
    PENDING,
    POOL_HOLD_MAX,
    POOL_HOLD_MIN,
    SLOW_REQUEST,
    STEADY_INLINE,
    TAKEOVER_DELAY,
    LoopRelay,
    voluntary_switches,
)


def bare_relay(**state) -> LoopRelay:
    """A LoopRelay with only the attributes its decisions read (no worker around it)."""
    item = LoopRelay.__new__(LoopRelay)
    item.role = threading.Lock()
    item.standby_event = threading.Event()
    item.taking = False
    item.standby_turns = item.counted_turns = 0
    item.inline_since = 0.0
    item.pool_hold = POOL_HOLD_MIN
    item.pool_since = 0.0
    item.lent_at = 0.0
    item.main_thread = -10
    item.loop_holder = item.main_thread
    item.lead_native_id = threading.get_native_id()
    for name, value in state.items():
        setattr(item, name, value)
    return item


def thread_state(native_id: int) -> bytes:
    with open(f"/proc/self/task/{native_id}/stat", "rb") as stat:
        return stat.read().rpartition(b")")[2].split()[0]


def test_not_overdue_before_the_takeover_delay():
    item = bare_relay()
    assert item._overdue(12345, TAKEOVER_DELAY / 2) == ""
    assert item._overdue(PENDING, TAKEOVER_DELAY / 2) == ""


def test_a_lead_job_no_thread_took_is_taken_back():
    assert bare_relay()._overdue(PENDING, TAKEOVER_DELAY * 1.5) == LONG


def test_a_holder_that_runs_keeps_the_loop_until_long_inline():
    item = bare_relay()  # lead_native_id: this very thread, running while it reads its own state
    assert item._overdue(12345, TAKEOVER_DELAY * 2) == ""
    assert item._overdue(12345, LONG_INLINE * 1.5) == LONG


def test_a_holder_asleep_in_its_request_is_taken_over():
    release = threading.Event()
    ids: list[int] = []

    def blocked_request():
        ids.append(threading.get_native_id())
        release.wait(10)

    thread = threading.Thread(target=blocked_request)
    thread.start()
    try:
        eventually(lambda: ids and thread_state(ids[0]) == b"S", timeout=5, what="the thread to sleep")
        item = bare_relay(lead_native_id=ids[0])
        assert item._overdue(12345, TAKEOVER_DELAY * 2) == ASLEEP
    finally:
        release.set()
        thread.join(5)


def test_a_vanished_holder_thread_is_taken_over():
    assert bare_relay(lead_native_id=2**30)._overdue(12345, TAKEOVER_DELAY * 2) == LONG


def test_pool_spells_double_while_the_app_keeps_blocking_and_reset_after_a_steady_run():
    item = bare_relay(lent_at=10.0, pool_since=10.1)  # inline serving lasted 0.1 s
    holds = []
    for _ in range(8):
        item._judge(blocked=True)
        holds.append(item.pool_hold)
    assert holds[:3] == [POOL_HOLD_MIN * 2, POOL_HOLD_MIN * 4, POOL_HOLD_MIN * 8]
    assert holds[-1] == POOL_HOLD_MAX
    item._judge(blocked=False)  # taken over from a holder that ran (busy machine, computation)
    assert item.pool_hold == POOL_HOLD_MIN
    item._judge(blocked=True)
    item.pool_since = item.lent_at + STEADY_INLINE + 1  # a long steady inline run before this block
    item._judge(blocked=True)
    assert item.pool_hold == POOL_HOLD_MIN


def test_an_inline_request_that_slept_sends_the_worker_to_pool_mode():
    me = threading.get_ident()
    item = bare_relay(loop_holder=me)
    sleeps = voluntary_switches()
    started = time.monotonic()
    time.sleep(SLOW_REQUEST * 4)  # as a request waiting on a database
    assert not item.end_inline(me, started, sleeps)
    assert item.loop_holder == item.main_thread
    assert item.standby_event.is_set()


def test_a_request_during_which_the_standby_woke_is_not_judged():
    """The main thread, polling while it stands by, takes the GIL: the holder then sleeps waiting for
    it, which says nothing of the application."""
    me = threading.get_ident()
    item = bare_relay(loop_holder=me)
    sleeps = item.count_sleeps()
    started = time.monotonic()
    time.sleep(SLOW_REQUEST * 4)
    item.standby_turns += 1  # as _stand_by does after each wait
    assert item.end_inline(me, started, sleeps)
    assert item.loop_holder == me


def test_a_fast_inline_request_keeps_the_loop():
    me = threading.get_ident()
    item = bare_relay(loop_holder=me)
    assert item.end_inline(me, time.monotonic(), voluntary_switches())
    assert item.loop_holder == me


def test_a_slow_inline_request_that_never_slept_keeps_the_loop():
    """Slow without sleeping: computation, a collection, or a preempted process: not blocked."""
    me = threading.get_ident()
    for _ in range(20):  # a busy loop may be interrupted by the interpreter itself: retry then
        item = bare_relay(loop_holder=me)
        sleeps = voluntary_switches()
        started = time.monotonic()
        while time.monotonic() - started < SLOW_REQUEST * 4:
            pass
        if voluntary_switches() == sleeps:
            assert item.end_inline(me, started, sleeps)
            assert item.loop_holder == me
            return
    raise AssertionError("this thread never ran 2 ms without sleeping")


def test_a_holder_taken_over_during_its_request_learns_it():
    me = threading.get_ident()
    item = bare_relay(loop_holder=relay.STOPPED)
    assert not item.end_inline(me, time.monotonic(), voluntary_switches())


def test_the_loop_is_lent_after_the_pool_spell_and_only_without_a_backlog():
    item = bare_relay(alive=True, pool_since=10.0)
    item.maybe_lend(10.0 + POOL_HOLD_MIN / 2, backlog=False)
    assert item.loop_holder == item.main_thread  # the spell is not over
    item.maybe_lend(10.0 + POOL_HOLD_MIN, backlog=True)
    assert item.loop_holder == item.main_thread  # heads wait for a thread: the pool keeps serving
    item.maybe_lend(10.0 + POOL_HOLD_MIN, backlog=False)
    assert item.loop_holder == PENDING


def test_one_lead_job_at_most_waits_in_the_queue():
    """A LEAD no thread took in time stays queued; lent again, the loop goes with it, not with a
    second one that would outlive it (one request thread, holding the loop, takes no more jobs)."""
    item = bare_relay(jobs=queue.SimpleQueue(), lead_queued=False)
    item.lend(1.0)
    item.offer_lead()
    item.loop_holder = item.main_thread  # taken back: no thread was free
    assert item.queued_jobs() == 0  # a LEAD is not a request: the pool still sees its threads free
    item.lend(2.0)
    item.offer_lead()
    assert item.jobs.qsize() == 1
    assert item.jobs.get() is LEAD
    item.entry = None
    item.event_loop = lambda poller, holder: None  # the loop the new holder runs: left at once
    item.poller = None
    item.lead(item.entry)
    assert item.loop_holder == threading.get_ident() and not item.lead_queued
    item.offer_lead()
    assert item.jobs.qsize() == 1  # offered again once the last one was taken
