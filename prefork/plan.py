"""The pool's rules as one pure function: given the workers, their scoreboard slots and the time,
what the master must do now.

``plan(state, workers, slots, now)`` returns a list of actions and changes nothing; the arbiter
applies them (fork, signals, sd_notify, hooks) and the pool records what they mean for its
bookkeeping (``Pool.apply``). Events the master cannot plan (a worker exited, a signal arrived) are
handled where they happen, in ``Pool.exited`` and the arbiter's signal handlers.

The rules:
- ``size`` workers of the current generation serve. A new generation (HUP) or a replacement for a
  worker that asked to be recycled (--max-requests, state RECYCLE) starts first; the workers it
  replaces are retired (TERM, graceful) only once ``size`` new ones report READY.
- Extra workers (TTOU) leave newest first. Missing ones start, but not before ``respawn_at`` (the
  back-off after workers died before they were ready).
- A worker whose heartbeat is older than --timeout is aborted (asked to EVACUATE its parked
  connections, then SIGUSR2 for its stack dump) and, ABORT_GRACE later, killed; one whose heartbeat
  came back in time is told it recovered.
- The master is STARTING until a worker is READY (BOOTED), then SERVING once ``size`` are, which it
  announces (READY=1); a reload is RELOADING until the new generation serves. An application that
  failed to load at the first start, before any worker was ever ready, halts the master.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from . import scoreboard as sb
from .exits import EXIT_APP_LOAD

ABORT_GRACE = 1.0  # seconds between SIGUSR2 (stack dump) and SIGKILL for a silent worker


class Phase(enum.Enum):
    STARTING = "starting"  # no worker has been READY yet: a boot failure means the application is broken
    BOOTED = "booted"  # some worker was READY; the full pool is not yet announced
    SERVING = "serving"
    RELOADING = "reloading"  # a new generation is starting (HUP)


class SlotView(NamedTuple):
    """What the master reads of a worker's scoreboard slot."""

    state: int
    heartbeat: float


class WorkerProc:
    """A worker process as the master knows it."""

    __slots__ = ("pid", "slot", "generation", "retiring", "abort_sent")

    def __init__(
        self, pid: int, slot: int | None, generation: int, retiring: str = "", abort_sent: float = 0.0
    ) -> None:
        self.pid = pid
        self.slot = slot  # None for workers adopted from a previous master image (no scoreboard slot)
        self.generation = generation
        self.retiring = retiring  # why we sent TERM; empty while it serves
        self.abort_sent = abort_sent  # when it was aborted for silence; 0 = not

    def __repr__(self) -> str:
        return f"<WorkerProc pid {self.pid} slot {self.slot} generation {self.generation}>"


class PoolState(NamedTuple):
    """The pool's own state, as far as the rules need it."""

    size: int  # workers wanted
    generation: int
    phase: Phase
    timeout: float  # --timeout; 0 = never
    respawn_at: float = 0.0  # no start before this (back-off)
    boot_failed: bool = False  # the application failed to load at the first start


# -- actions: named tuples (no dataclasses import in the master); compare them with their type ----------


class Spawn(NamedTuple):
    generation: int


class Retire(NamedTuple):
    """Graceful stop (TERM), remembering why."""

    pid: int
    why: str


class Abort(NamedTuple):
    """A silent worker: ask it to EVACUATE its parked connections, then SIGUSR2 (stack dump)."""

    pid: int


class Recovered(NamedTuple):
    """An aborted worker's heartbeat came back in time: withdraw the EVACUATE request."""

    pid: int


class Signal(NamedTuple):
    pid: int
    sig: int


class Enter(NamedTuple):
    phase: Phase


class Notify(NamedTuple):
    """sd_notify fields, e.g. ("READY=1", "STATUS=...")."""

    fields: tuple[str, ...]


class Halt(NamedTuple):
    code: int


Action = Spawn | Retire | Abort | Recovered | Signal | Enter | Notify | Halt


def status_line(workers: int, generation: int) -> str:
    return f"{workers} workers, generation {generation}"


def plan(
    state: PoolState, workers: Iterable[WorkerProc], slots: Mapping[int, SlotView], now: float, stopping: bool = False
) -> list[Action]:
    """Everything the master should do now (see the module docstring); ``stopping``: the master is
    stopping, so nothing new starts and nobody is retired by the pool's rules."""
    if state.boot_failed:
        return [Halt(EXIT_APP_LOAD)]
    workers = list(workers)
    actions: list[Action] = list(_health(state.timeout, workers, slots, now))
    if state.phase is Phase.STARTING and any(
        w.slot is not None and slots[w.slot].state in (sb.READY, sb.RECYCLE) for w in workers
    ):
        actions.append(Enter(Phase.BOOTED))
    if not stopping:
        actions += _manage(state, workers, slots, now)
    return actions


def _state(proc: WorkerProc, slots: Mapping[int, SlotView]) -> int:
    return slots[proc.slot].state if proc.slot is not None else 0


def _manage(state: PoolState, workers: list[WorkerProc], slots: Mapping[int, SlotView], now: float) -> list[Action]:
    actions: list[Action] = []
    current = [w for w in workers if w.generation == state.generation and not w.retiring]
    recycling = [w for w in current if _state(w, slots) == sb.RECYCLE]
    serving = [w for w in current if w not in recycling]
    missing = state.size - len(serving)
    if missing > 0 and now >= state.respawn_at:
        actions += [Spawn(state.generation)] * missing
    actions += [Retire(w.pid, "fewer workers requested") for w in serving[state.size :]]  # newest leave first
    ready = [w for w in serving if _state(w, slots) == sb.READY]
    if len(ready) < state.size:
        return actions
    actions += [Retire(w.pid, "recycled after --max-requests") for w in recycling]
    actions += [
        Retire(w.pid, f"replaced by generation {state.generation}")
        for w in workers
        if w.generation < state.generation and not w.retiring
    ]
    if state.phase is not Phase.SERVING:
        status = status_line(len(workers), state.generation)
        actions += [Enter(Phase.SERVING), Notify(("READY=1", f"STATUS={status}"))]
    return actions


def _health(timeout: float, workers: list[WorkerProc], slots: Mapping[int, SlotView], now: float) -> Iterable[Action]:
    for proc in workers:
        if proc.slot is None:
            continue
        if not timeout or now - slots[proc.slot].heartbeat <= timeout:
            if proc.abort_sent:  # it came back in time: a later hang gets its own dump first
                yield Recovered(proc.pid)
        elif not proc.abort_sent:
            yield Abort(proc.pid)
        elif now - proc.abort_sent >= ABORT_GRACE:
            yield Signal(proc.pid, signal.SIGKILL)
