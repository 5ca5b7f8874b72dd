"""The worker pool as the master sees it: which workers to start, retire or kill, and why they left.

Called only from the master's loop. The rules:
- ``size`` workers of the current generation serve; a new generation (HUP) or a replacement for a
  worker that asked to be recycled (--max-requests) is started first, and the workers it replaces
  are retired (TERM, graceful) only once enough new ones report READY in the scoreboard. If the new
  generation cannot boot, it is abandoned and the old one keeps serving.
- A worker that dies before it was ready is restarted with exponential back-off; at the first start,
  when no worker ever became ready, an application that cannot load stops the master.
- A worker whose heartbeat is older than --timeout is asked to EVACUATE (hand its parked keep-alive
  connections to siblings, so they are not reset with it), gets SIGUSR2 (it dumps its stacks) and,
  ABORT_GRACE later, SIGKILL.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import signal
from collections import deque
from collections.abc import Callable
from time import monotonic
from typing import Any

from . import scoreboard as sb
from .hooks import call_hook
from .process import oom_kill_count
from .stats import Totals
from .systemd import Notifier

MAX_BACKOFF = 10.0
ABORT_GRACE = 1.0  # seconds between SIGUSR2 (stack dump) and SIGKILL for a silent worker


class WorkerProc:
    __slots__ = ("pid", "slot", "generation", "retiring", "abort_sent")

    def __init__(self, pid: int, slot: int | None, generation: int) -> None:
        self.pid = pid
        self.slot = slot  # None for workers adopted from a previous master image (no scoreboard slot)
        self.generation = generation
        self.retiring = ""  # why we sent TERM; empty while it serves
        self.abort_sent = 0.0


class Pool:
    def __init__(self, settings: Any, log: logging.Logger, board: sb.Scoreboard, notifier: Notifier) -> None:
        self.settings = settings
        self.log = log
        self.board = board
        self.notifier = notifier
        self.size = settings.workers
        self.workers: dict[int, WorkerProc] = {}
        self.generation = 0
        self.reloading = False
        self.announced_ready = False
        self.booted = False  # some worker reached READY at least once
        self.first_start_failed = False
        self.failures = 0  # consecutive workers that died before becoming ready
        self.respawn_at = 0.0
        self.uid: int | None = None
        self.gid: int | None = None
        self.announce_main_pid = False
        self.server: Any = None  # the Arbiter, for the hooks' first argument
        self.retired = Totals()  # request counts of the workers that exited
        self.retired_handoffs = (0, 0)  # their connections handed off and taken over
        self.restarts: dict[str, int] = {}  # workers replaced, by cause (see exit_cause)
        self.last_exit: dict[int, str] = {}  # slot -> why its last worker left

    # -- decisions ------------------------------------------------------------------------------------

    def manage(self, spawn: Callable[[WorkerProc], int], stopping: bool) -> None:
        if stopping or self.first_start_failed:
            return
        current = [w for w in self.workers.values() if w.generation == self.generation and not w.retiring]
        recycling = [w for w in current if self.board.read(w.slot)[1] == sb.RECYCLE]
        serving = [w for w in current if w not in recycling]
        missing = self.size - len(serving)
        if missing > 0 and monotonic() >= self.respawn_at:
            for _ in range(missing):
                self._start(spawn)
        for proc in serving[self.size:]:  # TTOU: the newest extras leave first
            self._retire(proc, "fewer workers requested")
        ready = [w for w in serving if self.board.read(w.slot)[1] == sb.READY]
        if len(ready) < self.size:
            return
        for proc in recycling:
            self._retire(proc, "recycled after --max-requests")
        for proc in list(self.workers.values()):
            if proc.generation < self.generation and not proc.retiring:
                self._retire(proc, f"replaced by generation {self.generation}")
        if self.reloading:
            self.reloading = False
            self.log.info("Reload complete: generation %d serves", self.generation)
            self.notifier.ready(self.status())
        elif not self.announced_ready:
            self.announced_ready = True
            if self.announce_main_pid:  # a new master after USR2 tells systemd it is the service now
                self.notifier.notify(f"MAINPID={os.getpid()}")
            self.notifier.ready(self.status())

    def _start(self, spawn: Callable[[WorkerProc], int]) -> None:
        used = {w.slot for w in self.workers.values()}
        slot = next((i for i in range(self.board.capacity) if i not in used), None)
        if slot is None:
            self.log.error("No free scoreboard slot: cannot start more than %d workers", self.board.capacity)
            return
        self.board.reset(slot, monotonic())
        proc = WorkerProc(0, slot, self.generation)
        proc.pid = spawn(proc)
        self.workers[proc.pid] = proc

    def _retire(self, proc: WorkerProc, reason: str) -> None:
        proc.retiring = reason
        _kill(proc.pid, signal.SIGTERM)

    def reload(self) -> None:
        if self.reloading:
            self.log.warning("Reload already in progress (generation %d)", self.generation)
            return
        self.generation += 1
        self.reloading = True
        self.notifier.reloading()
        self.log.info("Reloading: starting generation %d", self.generation)

    def resize(self, delta: int, minimum: int = 1) -> None:
        wanted = max(minimum, self.size + delta)
        if wanted * 2 > self.board.capacity:
            self.log.error("Cannot run %d workers: the scoreboard holds %d", wanted, self.board.capacity)
            return
        if wanted != self.size:
            call_hook(self.settings, self.log, "nworkers_changed", self.server, wanted, self.size)
        self.size = wanted
        self.log.info("Number of workers: %d", self.size)
        self.notifier.status(self.status())

    def adopt(self, pids: str) -> None:
        """Workers left by the master image we replaced (HUP with --preload): drained once ready."""
        for pid in filter(None, pids.split(",")):
            self.workers[int(pid)] = WorkerProc(int(pid), None, -1)

    def signal_all(self, sig: int) -> None:
        for pid in self.workers:
            _kill(pid, sig)

    def status(self) -> str:
        return f"{len(self.workers)} workers, generation {self.generation}"

    # -- observations ---------------------------------------------------------------------------------

    def check_health(self, now: float) -> None:
        timeout = self.settings.timeout
        for proc in list(self.workers.values()):
            if proc.slot is None:
                continue
            heartbeat, state, _ = self.board.read(proc.slot)
            if state in (sb.READY, sb.RECYCLE):
                self.booted = True
            if not timeout or now - heartbeat <= timeout:
                if proc.abort_sent:  # it came back in time: a later hang gets its own dump first
                    proc.abort_sent = 0.0
                    self.board.ask(proc.slot, 0)
                continue
            if not proc.abort_sent:
                running = "; ".join(f"{line} for {now - start:.1f}s" for start, line in self.board.running(proc.slot))
                self.log.critical("WORKER TIMEOUT (pid:%d): no heartbeat for %.0fs, running: %s; dumping its "
                                  "stacks, then killing it", proc.pid, now - heartbeat, running or "nothing")
                proc.abort_sent = now
                self.board.ask(proc.slot, sb.EVACUATE)
                _kill(proc.pid, signal.SIGUSR2)
            elif now - proc.abort_sent >= ABORT_GRACE:
                _kill(proc.pid, signal.SIGKILL)

    def exited(self, pid: int, code: int, boot_failed_code: int) -> None:
        proc = self.workers.pop(pid, None)
        if proc is None:
            self.log.debug("Reaped process %d (not a worker: an orphan)", pid)
            return
        call_hook(self.settings, self.log, "child_exit", self.server, proc)
        if proc.slot is None:
            self.log.info("Worker (pid %d) of the previous master exited", pid)
            return
        _, state, requests = self.board.read(proc.slot)
        message = self.board.message(proc.slot)
        if self.board.stats_size:  # its last published counts stay in the totals
            self.retired.add(Totals.unpack(self.board.stats_block(proc.slot)), gauges=False)
        handed_off, taken_over = self.board.handoffs(proc.slot)
        self.retired_handoffs = (self.retired_handoffs[0] + handed_off, self.retired_handoffs[1] + taken_over)
        self.board.release(proc.slot)
        cause = exit_cause(proc.retiring, proc.abort_sent, code, code == boot_failed_code and state == sb.BOOT_FAILED)
        self.last_exit[proc.slot] = cause or proc.retiring
        if cause:
            self.restarts[cause] = self.restarts.get(cause, 0) + 1
        if proc.retiring:
            self.log.info("Worker %d (pid %d) exited: %s", proc.slot, pid, proc.retiring)
            return
        if code == boot_failed_code and state == sb.BOOT_FAILED:
            self._boot_failed(proc, message)
        elif proc.abort_sent:
            self.log.error("Worker %d (pid %d) timed out and was killed by the master", proc.slot, pid)
        elif code == 0:
            self.log.info("Worker %d (pid %d) exited by itself after %d requests: %s", proc.slot, pid,
                          requests, message or "no reason given")
        elif code == -signal.SIGKILL:
            oom = oom_kill_count()
            self.log.error("Worker %d (pid %d) was killed by SIGKILL from outside prefork; the kernel OOM "
                           "killer is a common cause%s", proc.slot, pid,
                           f" (cgroup oom_kill counter: {oom})" if oom is not None else "")
        elif code < 0:
            self.log.error("Worker %d (pid %d) was killed by signal %s", proc.slot, pid, signal.Signals(-code).name)
        else:
            self.log.error("Worker %d (pid %d) crashed with exit code %d", proc.slot, pid, code)
        if state == sb.BOOTING or state == sb.BOOT_FAILED:
            self.failures += 1
            delay = min(MAX_BACKOFF, 0.1 * 2 ** (self.failures - 1))
            self.respawn_at = monotonic() + delay
            if self.failures > 1:
                self.log.warning("Workers keep failing before they are ready; next start in %.1fs", delay)
        else:
            self.failures = 0

    def _boot_failed(self, proc: WorkerProc, message: str) -> None:
        if not self.booted:
            if not self.first_start_failed:  # report once, not once per worker
                self.log.error("Failed to load application %r: %s", self.settings.app_uri, message)
                self.first_start_failed = True
            return
        if self.reloading and proc.generation == self.generation:
            self.log.error("Reload failed, generation %d keeps serving: %s", self.generation - 1, message)
            for other in self.workers.values():
                if other.generation == self.generation:
                    self._retire(other, "its generation failed to boot")
            self.generation -= 1
            self.reloading = False
            self.notifier.ready(self.status() + ", reload failed")
            return
        self.log.error("Worker %d (pid %d) failed to boot: %s", proc.slot, proc.pid, message)

    # -- stop -----------------------------------------------------------------------------------------

    def stop_all(self, graceful: bool, close_listeners: Callable[[], None], sleep: Callable[[], None],
                 reap: Callable[[], None], signals: deque) -> None:
        """Stop every worker: TERM and wait up to graceful_timeout (or QUIT), then SIGKILL."""
        if graceful:
            close_listeners()  # the last worker closing its copy ends listening; queued ones get served
        for proc in self.workers.values():
            proc.retiring = proc.retiring or "server stopping"
            _kill(proc.pid, signal.SIGTERM if graceful else signal.SIGQUIT)
        deadline = monotonic() + self.settings.graceful_timeout
        while self.workers and monotonic() < deadline:
            sleep()
            if graceful and (signal.SIGINT in signals or signal.SIGQUIT in signals):
                break  # a fast stop asked for during a graceful one
            signals.clear()
            reap()
        for pid in self.workers:
            _kill(pid, signal.SIGKILL)
        while self.workers:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.workers.pop(pid, None)


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


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise
