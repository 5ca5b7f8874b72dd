"""The pool's rules (prefork/plan.py) as a table, without processes: workers and their scoreboard
slots in, actions out. The real-process tests (test_process, test_lifecycle) check that the arbiter
carries the actions out."""

from __future__ import annotations

import logging
import signal
from time import monotonic

import pytest

from prefork import scoreboard as sb
from prefork.exits import EXIT_APP_LOAD, EXIT_BOOT_FAILED
from prefork.plan import (
    ABORT_GRACE,
    Abort,
    Enter,
    Halt,
    Notify,
    Phase,
    PoolState,
    Recovered,
    Retire,
    Signal,
    SlotView,
    Spawn,
    WorkerProc,
    plan,
)
from prefork.pool import MAX_BACKOFF, Pool

R, B, F, C, D = sb.READY, sb.BOOTING, sb.BOOT_FAILED, sb.RECYCLE, sb.DRAINING
NOW = 100.0


def pool_of(*workers: tuple) -> tuple[list[WorkerProc], dict[int, SlotView]]:
    """(pid, generation, scoreboard state[, seconds since the heartbeat[, retiring[, abort_sent]]])."""
    procs, slots = [], {}
    for slot, (pid, generation, state, *rest) in enumerate(workers):
        silent = rest[0] if rest else 0.0
        retiring = rest[1] if len(rest) > 1 else ""
        abort_sent = rest[2] if len(rest) > 2 else 0.0
        procs.append(WorkerProc(pid, slot, generation, retiring, abort_sent))
        slots[slot] = SlotView(state, NOW - silent)
    return procs, slots


def described(actions: list) -> list[tuple]:
    """Actions are named tuples: Abort(1) == Recovered(1) as tuples, so compare them with their type."""
    return [(type(action).__name__, *action) for action in actions]


def state(size=2, generation=0, phase=Phase.SERVING, timeout=30.0, respawn_at=0.0, boot_failed=False):
    return PoolState(size, generation, phase, timeout, respawn_at, boot_failed)


READY_2 = ("READY=1", "STATUS=2 workers, generation 0")

CASES = [
    # (what, pool state, workers, stopping, expected actions)
    ("first start: spawn the whole pool", state(phase=Phase.STARTING), [], False, [Spawn(0), Spawn(0)]),
    ("booting: nothing to do yet", state(phase=Phase.STARTING), [(1, 0, B), (2, 0, B)], False, []),
    (
        "one READY: booted, not yet announced",
        state(phase=Phase.STARTING),
        [(1, 0, R), (2, 0, B)],
        False,
        [Enter(Phase.BOOTED)],
    ),
    (
        "2/2 READY: serving, announced",
        state(phase=Phase.BOOTED),
        [(1, 0, R), (2, 0, R)],
        False,
        [Enter(Phase.SERVING), Notify(READY_2)],
    ),
    ("serving and full: nothing", state(), [(1, 0, R), (2, 0, R)], False, []),
    ("a worker died: replaced", state(), [(1, 0, R)], False, [Spawn(0)]),
    ("back-off: no start before respawn_at", state(respawn_at=NOW + 1), [(1, 0, R)], False, []),
    ("back-off over: start", state(respawn_at=NOW - 1), [(1, 0, R)], False, [Spawn(0)]),
    (
        "BOOT_FAILED before any READY: halt",
        state(phase=Phase.STARTING, boot_failed=True),
        [(1, 0, B)],
        False,
        [Halt(EXIT_APP_LOAD)],
    ),
    (
        "reload: generation 1 starts beside generation 0",
        state(generation=1, phase=Phase.RELOADING),
        [(1, 0, R), (2, 0, R)],
        False,
        [Spawn(1), Spawn(1)],
    ),
    (
        "reload: gen 1 has 1/2 READY: gen 0 keeps serving",
        state(generation=1, phase=Phase.RELOADING),
        [(1, 0, R), (2, 0, R), (3, 1, R), (4, 1, B)],
        False,
        [],
    ),
    (
        "reload: gen 1 has 2/2 READY: retire gen 0, serving",
        state(generation=1, phase=Phase.RELOADING),
        [(1, 0, R), (2, 0, R), (3, 1, R), (4, 1, R)],
        False,
        [
            Retire(1, "replaced by generation 1"),
            Retire(2, "replaced by generation 1"),
            Enter(Phase.SERVING),
            Notify(("READY=1", "STATUS=4 workers, generation 1")),
        ],
    ),
    (
        "reload: gen 0 already retiring is not retired twice",
        state(generation=1),
        [(1, 0, D, 0, "replaced by generation 1"), (3, 1, R), (4, 1, R)],
        False,
        [],
    ),
    ("max-requests: the recycling worker gets a replacement first", state(), [(1, 0, C), (2, 0, R)], False, [Spawn(0)]),
    (
        "max-requests: replacement READY: retire the recycling one",
        state(),
        [(1, 0, C), (2, 0, R), (3, 0, R)],
        False,
        [Retire(1, "recycled after --max-requests")],
    ),
    ("max-requests: replacement still booting: keep it", state(), [(1, 0, C), (2, 0, R), (3, 0, B)], False, []),
    (
        "TTOU: the newest extra leaves",
        state(size=1),
        [(1, 0, R), (2, 0, R)],
        False,
        [Retire(2, "fewer workers requested")],
    ),
    ("TTIN: one more", state(size=3), [(1, 0, R), (2, 0, R)], False, [Spawn(0)]),
    ("stopping: nothing starts or retires", state(size=3), [(1, 0, R)], True, []),
    ("heartbeat 31 s old: abort (EVACUATE + USR2)", state(), [(1, 0, R, 31), (2, 0, R)], False, [Abort(1)]),
    ("heartbeat 29 s old: fine", state(), [(1, 0, R, 29), (2, 0, R)], False, []),
    ("aborted, grace not over: wait", state(), [(1, 0, R, 31.5, "", NOW - ABORT_GRACE / 2), (2, 0, R)], False, []),
    (
        "aborted, grace over: KILL",
        state(),
        [(1, 0, R, 32, "", NOW - ABORT_GRACE), (2, 0, R)],
        False,
        [Signal(1, signal.SIGKILL)],
    ),
    (
        "aborted, heartbeat back in time: recovered",
        state(),
        [(1, 0, R, 0.1, "", NOW - 0.5), (2, 0, R)],
        False,
        [Recovered(1)],
    ),
    ("--timeout 0: never aborted", state(timeout=0), [(1, 0, R, 1000), (2, 0, R)], False, []),
    ("stopping: a silent worker is still killed", state(), [(1, 0, R, 31)], True, [Abort(1)]),
]


@pytest.mark.parametrize("what, pool_state, workers, stopping, expected", CASES, ids=[c[0] for c in CASES])
def test_plan(what, pool_state, workers, stopping, expected):
    procs, slots = pool_of(*workers)
    assert described(plan(pool_state, procs, slots, NOW, stopping)) == described(expected)


def test_plan_changes_nothing():
    procs, slots = pool_of((1, 0, R, 31), (2, 0, C))
    before = [repr(p) + p.retiring + str(p.abort_sent) for p in procs], dict(slots)
    plan(state(), procs, slots, NOW)
    assert ([repr(p) + p.retiring + str(p.abort_sent) for p in procs], slots) == before


# -- the bookkeeping around the rules (Pool: events and applied actions) ---------------------------------


def make_pool(size=2):
    board = sb.Scoreboard(8)
    return Pool(size, 30.0, board, logging.getLogger("test-pool"), "app:app"), board


def started(pool, board, pid, state_, generation=0):
    slot = pool.free_slot()
    board.reset(slot, 0.0)
    board.set_state(slot, state_)
    pool.add(pid, slot, generation)
    return slot


def test_abort_then_recovered_asks_and_withdraws_evacuate():
    pool, board = make_pool(1)
    slot = started(pool, board, 10, R)
    pool.apply(Abort(10), NOW)
    assert board.asked(slot) == sb.EVACUATE and pool.workers[10].abort_sent == NOW
    pool.apply(Recovered(10), NOW + 1)
    assert board.asked(slot) == 0 and pool.workers[10].abort_sent == 0.0


def test_a_worker_that_recovered_from_a_timeout_is_aborted_again_before_a_kill():  # G18
    pool, board = make_pool(1)
    pool.phase = Phase.SERVING
    slot = started(pool, board, 10, R)
    board.beat(slot, 0.0)
    for now, expected in (
        (31.0, [Abort(10)]),
        (31.5, []),
        (None, [Recovered(10)]),
        (70.0, [Abort(10)]),
        (70.0 + ABORT_GRACE, [Signal(10, signal.SIGKILL)]),
    ):
        if now is None:  # the heartbeat comes back
            now = 40.0
            board.beat(slot, 39.9)
        actions = pool.plan(now)
        assert described(actions) == described(expected), now
        for action in actions:
            pool.apply(action, now)


def test_boot_failure_at_first_start_halts_once():
    pool, board = make_pool(2)
    for pid in (10, 11):
        slot = started(pool, board, pid, F)
        board.set_message(slot, "ImportError: no module app")
        pool.exited(pid, EXIT_BOOT_FAILED)
    assert pool.boot_failed and described(pool.plan(NOW)) == described([Halt(EXIT_APP_LOAD)])


def test_boot_failure_after_a_worker_was_ready_backs_off():
    pool, board = make_pool(2)
    pool.configure(2, 0)  # no --timeout: the heartbeats written here are not the point
    pool.phase = Phase.SERVING
    started(pool, board, 10, R)
    for failures in range(1, 9):
        started(pool, board, 20 + failures, F)
        pool.exited(20 + failures, EXIT_BOOT_FAILED)
        assert not pool.boot_failed and pool.failures == failures
    assert MAX_BACKOFF - 1 < pool.respawn_at - monotonic() <= MAX_BACKOFF  # 0.1 s doubling, capped
    assert pool.plan(pool.respawn_at - 0.01) == []  # nothing at all, whatever its type
    assert described(pool.plan(pool.respawn_at)) == described([Spawn(0)])


def test_a_reload_whose_generation_cannot_boot_is_undone():
    pool, board = make_pool(1)
    pool.phase = Phase.SERVING
    started(pool, board, 10, R)
    assert pool.reload() and not pool.reload()  # a second HUP during the reload is refused
    started(pool, board, 11, F, generation=1)
    started(pool, board, 12, B, generation=1)
    _, actions = pool.exited(11, EXIT_BOOT_FAILED)
    assert described(actions) == described(
        [
            Retire(12, "its generation failed to boot"),
            Notify(("READY=1", "STATUS=2 workers, generation 0, reload failed")),
        ]
    )
    assert pool.generation == 0 and pool.phase is Phase.SERVING


def test_exit_causes_are_counted():
    pool, board = make_pool(3)
    started(pool, board, 10, R)
    started(pool, board, 11, C)
    started(pool, board, 12, R)
    pool.apply(Retire(11, "recycled after --max-requests"), NOW)
    pool.exited(10, -signal.SIGKILL)
    pool.exited(11, 0)
    pool.exited(12, 1)
    assert pool.restarts == {"oom-kill": 1, "max-requests": 1, "crash": 1}
