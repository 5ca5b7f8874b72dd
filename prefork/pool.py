"""The master's bookkeeping of its workers: who runs in which scoreboard slot and generation, and
why the ones that left did.

The rules (which workers to start, retire, abort or kill, and when the pool is ready) are the pure
function in ``plan.py``: ``Pool.plan`` feeds it this state and the scoreboard, the arbiter carries out
the actions and hands each back to ``Pool.apply`` to record. Events arrive through ``exited`` (a
worker was reaped), ``reload`` and ``resize`` (signals). Nothing here forks, signals or notifies.
"""

from __future__ import annotations

import logging
import random
import signal
from time import monotonic

from . import scoreboard as sb
from .exits import EXIT_BOOT_FAILED
from .plan import (
    Abort,
    Action,
    Enter,
    Notify,
    Phase,
    PoolState,
    Recovered,
    Retire,
    SlotView,
    WorkerProc,
    plan,
    status_line,
)
from .process import oom_kill_count
from .stats import Totals

MAX_BACKOFF = 10.0


class Pool:
    def __init__(
        self, size: int, timeout: float, board: sb.Scoreboard, log: logging.Logger, app_name: str = ""
    ) -> None:
        self.size = size
        self.timeout = timeout
        self.board = board
        self.log = log
        self.app_name = app_name  # for the "failed to load" message
        self.workers: dict[int, WorkerProc] = {}
        self.generation = 0
        self.phase = Phase.STARTING
        self.boot_failed = False  # the application failed to load before any worker was ready
        self.failures = 0  # consecutive workers that died before becoming ready
        self.respawn_at = 0.0
        self.retired = Totals()  # request counts of the workers that exited
        self.retired_handoffs = (0, 0)  # their connections handed off and taken over
        self.restarts: dict[str, int] = {}  # workers replaced, by cause (see exit_cause)
        self.last_exit: dict[int, str] = {}  # slot -> why its last worker left

    def configure(self, size: int, timeout: float) -> None:
        """New settings (HUP): the next plans use them."""
        self.size, self.timeout = size, timeout

    # -- the rules ------------------------------------------------------------------------------------

    def plan(self, now: float, stopping: bool = False) -> list[Action]:
        state = PoolState(self.size, self.generation, self.phase, self.timeout, self.respawn_at, self.boot_failed)
        return plan(state, self.workers.values(), self.slots(), now, stopping)

    def slots(self) -> dict[int, SlotView]:
        views = {}
        for proc in self.workers.values():
            if proc.slot is not None:
                heartbeat, state, _ = self.board.read(proc.slot)
                views[proc.slot] = SlotView(state, heartbeat)
        return views

    def apply(self, action: Action, now: float) -> None:
        """Record what an action carried out by the arbiter means for the bookkeeping."""
        proc = self.workers.get(getattr(action, "pid", 0))
        if isinstance(action, Retire) and proc is not None:
            proc.retiring = action.why
        elif isinstance(action, Abort) and proc is not None and proc.slot is not None:
            proc.abort_sent = now
            self.board.ask(proc.slot, sb.EVACUATE)
        elif isinstance(action, Recovered) and proc is not None and proc.slot is not None:
            proc.abort_sent = 0.0
            self.board.ask(proc.slot, 0)
        elif isinstance(action, Enter):
            if self.phase is Phase.RELOADING and action.phase is Phase.SERVING:
                self.log.info("Reload complete: generation %d serves", self.generation)
            self.phase = action.phase

    def free_slot(self) -> int | None:
        used = {w.slot for w in self.workers.values()}
        return next((i for i in range(self.board.capacity) if i not in used), None)

    def add(self, pid: int, slot: int, generation: int) -> None:
        self.workers[pid] = WorkerProc(pid, slot, generation)

    # -- events ---------------------------------------------------------------------------------------

    def reload(self) -> bool:
        """HUP: start a new generation; False when one is already starting."""
        if self.phase is Phase.RELOADING:
            self.log.warning("Reload already in progress (generation %d)", self.generation)
            return False
        self.generation += 1
        self.phase = Phase.RELOADING
        self.log.info("Reloading: starting generation %d", self.generation)
        return True

    def resize(self, delta: int, minimum: int = 1) -> int | None:
        """TTIN/TTOU: the new number of workers, or None when the scoreboard cannot hold it."""
        wanted = max(minimum, self.size + delta)
        if wanted * 2 > self.board.capacity:
            self.log.error("Cannot run %d workers: the scoreboard holds %d", wanted, self.board.capacity)
            return None
        self.size = wanted
        self.log.info("Number of workers: %d", self.size)
        return wanted

    def adopt(self, pids: str) -> None:
        """Workers left by the master image we replaced (HUP with --preload): drained once ready."""
        for pid in filter(None, pids.split(",")):
            self.workers[int(pid)] = WorkerProc(int(pid), None, -1)

    def status(self) -> str:
        return status_line(len(self.workers), self.generation)

    def exited(self, pid: int, code: int) -> tuple[WorkerProc | None, list[Action]]:
        """A worker was reaped: account for it, decide the back-off; returns it (None for an orphan)
        and what the master must do about it (a reload whose generation cannot boot is undone)."""
        proc = self.workers.pop(pid, None)
        if proc is None:
            self.log.debug("Reaped process %d (not a worker: an orphan)", pid)
            return None, []
        if proc.slot is None:
            self.log.info("Worker (pid %d) of the previous master exited", pid)
            return proc, []
        _, state, requests = self.board.read(proc.slot)
        message = self.board.message(proc.slot)
        if self.board.stats_size:  # its last published counts stay in the totals
            self.retired.add(Totals.unpack(self.board.stats_block(proc.slot)), gauges=False)
        handed_off, taken_over = self.board.handoffs(proc.slot)
        self.retired_handoffs = (self.retired_handoffs[0] + handed_off, self.retired_handoffs[1] + taken_over)
        self.board.release(proc.slot)
        boot_failed = code == EXIT_BOOT_FAILED and state == sb.BOOT_FAILED
        cause = exit_cause(proc.retiring, proc.abort_sent, code, boot_failed)
        self.last_exit[proc.slot] = cause or proc.retiring
        if cause:
            self.restarts[cause] = self.restarts.get(cause, 0) + 1
        if proc.retiring:
            self.log.info("Worker %d (pid %d) exited: %s", proc.slot, pid, proc.retiring)
            return proc, []
        actions: list[Action] = []
        if boot_failed:
            actions = self._boot_failed(proc, message)
        else:
            self._report_exit(proc, code, requests, message)
        if state == sb.BOOTING or state == sb.BOOT_FAILED:
            self.failures += 1
            delay = min(MAX_BACKOFF, 0.1 * 2 ** (self.failures - 1))
            self.respawn_at = monotonic() + delay
            if self.failures > 1:
                self.log.warning("Workers keep failing before they are ready; next start in %.1fs", delay)
        else:
            self.failures = 0
        return proc, actions

    def _report_exit(self, proc: WorkerProc, code: int, requests: int, message: str) -> None:
        slot, pid = proc.slot, proc.pid
        if proc.abort_sent:
            self.log.error("Worker %d (pid %d) timed out and was killed by the master", slot, pid)
        elif code == 0:
            self.log.info(
                "Worker %d (pid %d) exited by itself after %d requests: %s",
                slot,
                pid,
                requests,
                message or "no reason given",
            )
        elif code == -signal.SIGKILL:
            oom = oom_kill_count()
            self.log.error(
                "Worker %d (pid %d) was killed by SIGKILL from outside prefork; the kernel OOM "
                "killer is a common cause%s",
                slot,
                pid,
                f" (cgroup oom_kill counter: {oom})" if oom is not None else "",
            )
        elif code < 0:
            self.log.error("Worker %d (pid %d) was killed by signal %s", slot, pid, signal.Signals(-code).name)
        else:
            self.log.error("Worker %d (pid %d) crashed with exit code %d", slot, pid, code)

    def _boot_failed(self, proc: WorkerProc, message: str) -> list[Action]:
        if self.phase is Phase.STARTING:
            if not self.boot_failed:  # report once, not once per worker
                self.log.error("Failed to load application %r: %s", self.app_name, message)
                self.boot_failed = True
            return []
        if self.phase is Phase.RELOADING and proc.generation == self.generation:
            self.log.error("Reload failed, generation %d keeps serving: %s", self.generation - 1, message)
            actions: list[Action] = [
                Retire(w.pid, "its generation failed to boot")
                for w in self.workers.values()
                if w.generation == self.generation
            ]
            self.generation -= 1
            self.phase = Phase.SERVING
            return [*actions, Notify(("READY=1", f"STATUS={self.status()}, reload failed"))]
        self.log.error("Worker %d (pid %d) failed to boot: %s", proc.slot, proc.pid, message)
        return []


def exit_cause(retiring: str, aborted: float, code: int, boot_failed: bool) -> str:
    """Why a worker left, as a restart cause for the metrics; "" when it was stopped on purpose
    (fewer workers, server stopping)."""
    if retiring:
        if retiring.startswith("recycled"):
            return "max-requests"
        if retiring.startswith("replaced"):
            return "reload"
        return ""
    if aborted:
        return "timeout"
    if boot_failed or code > 0:
        return "crash"
    if code == -signal.SIGKILL:
        return "oom-kill"
    if code < 0:
        return "signal"
    return "exit"


def jittered_max_requests(max_requests: int, jitter: int) -> int:
    """Per-worker request limit; 0 = never recycle."""
    if not max_requests:
        return 0
    return max_requests + (random.randint(0, jitter) if jitter else 0)
