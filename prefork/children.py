"""The master's hands: it carries out the pool's actions (``plan.py``) on processes — fork a worker,
signal it, notify systemd, halt — reaps exited children, and stops every worker at the end.

Mixed into ``arbiter.Arbiter``; runs in the master's loop.
"""

from __future__ import annotations

import os
import signal
import sys
from time import monotonic

from . import __version__
from .master_state import MasterState
from .plan import Abort, Action, Halt, Notify, Retire, Signal, Spawn
from .process import kill_quietly
from .prometheus_multiproc import PROMETHEUS_DIR, mark_process_dead
from .workers.sync import SyncWorker
from .workers.threaded import ThreadedWorker

WORKER_CLASSES = {"sync": SyncWorker, "threaded": ThreadedWorker}


class Children(MasterState):
    def _apply(self, actions: list[Action]) -> None:
        """Carry out what the pool's rules decided, and let the pool record each action."""
        now = monotonic()
        for action in actions:
            if isinstance(action, Spawn):
                self._spawn(action.generation, now)
                continue
            if isinstance(action, Retire):
                kill_quietly(action.pid, signal.SIGTERM)
            elif isinstance(action, Abort):
                self._abort(action.pid, now)
            elif isinstance(action, Signal):
                kill_quietly(action.pid, action.sig)
            elif isinstance(action, Notify):
                self._notify(action.fields)
            elif isinstance(action, Halt) and self.exit_code is None:
                self.exit_code, self.graceful = action.code, False
            self.pool.apply(action, now)

    def _notify(self, fields: tuple[str, ...]) -> None:
        if self.announce_main_pid and "READY=1" in fields:  # the first READY of a master started by USR2
            self.announce_main_pid = False
            self.notifier.notify(f"MAINPID={os.getpid()}")
        self.notifier.notify(*fields)

    def _abort(self, pid: int, now: float) -> None:
        """A silent worker: say what it was doing, then SIGUSR2 (it dumps its stacks)."""
        proc = self.pool.workers[pid]
        board = self.pool.board
        if proc.slot is None:  # never planned: only workers with a slot have a heartbeat
            return
        heartbeat = board.read(proc.slot)[0]
        running = "; ".join(f"{line} for {now - start:.1f}s" for start, line in board.running(proc.slot))
        self.log.critical(
            "WORKER TIMEOUT (pid:%d): no heartbeat for %.0fs, running: %s; dumping its stacks, then killing it",
            pid,
            now - heartbeat,
            running or "nothing",
        )
        kill_quietly(pid, signal.SIGUSR2)

    def _stop_workers(self) -> None:
        """Stop every worker: TERM and wait up to graceful_timeout (or QUIT), then SIGKILL."""
        if self.graceful:
            self._stop_listening()  # the last worker closing its copy ends listening; queued ones get served
        for proc in self.pool.workers.values():
            proc.retiring = proc.retiring or "server stopping"
            kill_quietly(proc.pid, signal.SIGTERM if self.graceful else signal.SIGQUIT)
        deadline = monotonic() + self.settings.graceful_timeout
        while self.pool.workers and monotonic() < deadline:
            self._sleep()
            if self.graceful and (signal.SIGINT in self.signals or signal.SIGQUIT in self.signals):
                break  # a fast stop asked for during a graceful one
            self.signals.clear()
            self._reap()
        for pid in self.pool.workers:
            kill_quietly(pid, signal.SIGKILL)
        while self.pool.workers:
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.pool.workers.pop(pid, None)

    def _spawn(self, generation: int, now: float) -> None:
        slot = self.pool.free_slot()
        if slot is None:
            self.log.error("No free scoreboard slot: cannot start more than %d workers", self.pool.board.capacity)
            return
        self.pool.board.reset(slot, now)
        worker_class = WORKER_CLASSES[self.settings.worker_class]
        worker = worker_class(
            slot,
            self.settings,
            self.listeners,
            self.pool.board,
            self.log,
            f"prefork/{__version__}",
            self.channel,
            self.statsd,
        )
        self.hook("pre_fork", worker)
        pid = os.fork()
        if pid:
            worker.pid = pid
            self.pool.add(pid, slot, generation)
            return
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            os.close(self.wake_r)
            os.close(self.wake_w)
            worker.pid = os.getpid()
            self.hook("post_fork", worker)
            code = worker.main(self.app, self.uid, self.gid)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        except BaseException:
            self.log.exception("Worker %d crashed", slot)
        finally:
            self.hook("worker_exit", worker)
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001 - the process ends on the next line anyway
                    pass
            os._exit(code)

    def _reap(self) -> None:
        """Collect every exited child: workers, an upgraded master, and orphans when we are PID 1."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            if pid == self.upgrade_child:
                self.log.error(
                    "The upgraded master (pid %d) exited with %s; this master carries on",
                    pid,
                    os.waitstatus_to_exitcode(status),
                )
                self.upgrade_child = 0
                if self.settings.pidfile and os.path.exists(self.settings.pidfile + ".oldbin"):
                    os.replace(self.settings.pidfile + ".oldbin", self.settings.pidfile)
                for listener in self.listeners:
                    listener.owned = True
                continue
            proc, actions = self.pool.exited(pid, os.waitstatus_to_exitcode(status))
            if proc is not None:
                self.hook("child_exit", proc)
            self._apply(actions)
            if PROMETHEUS_DIR in os.environ:
                mark_process_dead(pid)
