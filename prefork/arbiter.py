"""The master process: binds the sockets, forks the workers, then only supervises.

It never reads a client byte. Signal handlers only record the signal and wake the loop (through
``signal.set_wakeup_fd``); the loop acts in ``handle_<name>()``, reaps children, replaces dead and
silent workers, and stops. Signals: TERM = graceful stop, INT/QUIT = fast stop.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import signal
import sys
from collections import deque
from time import monotonic
from typing import Any

from . import __version__
from . import scoreboard as sb
from .proctitle import set_title
from .sockets import BindError, Listener, bind
from .workers.base import EXIT_BOOT_FAILED
from .workers.sync import SyncWorker
from .workers.threaded import ThreadedWorker

WORKER_CLASSES = {"sync": SyncWorker, "threaded": ThreadedWorker}
EXIT_OK, EXIT_CONFIG, EXIT_APP_LOAD = 0, 1, 3
HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD)
LOOP_INTERVAL = 1.0
MAX_BACKOFF = 10.0


class Arbiter:
    def __init__(self, settings: Any, log: logging.Logger) -> None:
        self.settings = settings
        self.log = log
        self.listeners: list[Listener] = []
        self.workers: dict[int, int] = {}  # pid -> scoreboard slot
        self.signals: deque[int] = deque()
        self.board = sb.Scoreboard(max(64, settings.workers * 2))
        self.booted = False  # some worker reached READY at least once
        self.failures = 0  # consecutive worker deaths without a READY in between
        self.respawn_at = 0.0
        self.exit_code: int | None = None  # set when the master decides to stop
        self.graceful = True
        self.name = settings.proc_name or settings.app_uri

    # -- main loop ----------------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self.listeners = [bind(address, self.settings.backlog) for address in self.settings.bind]
        except BindError as exc:
            self.log.error("%s", exc)
            return EXIT_CONFIG
        for listener in self.listeners:
            listener.set_timeouts(self.settings.read_timeout, self.settings.write_timeout)
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._install_signals()
        set_title(f"master [{self.name}]")
        self.log.info("Starting prefork %s", __version__)
        for listener in self.listeners:
            self.log.info("Listening at: %s (%d)", listener.address, os.getpid())
        self.log.info("Using worker: %s", self.settings.worker_class)
        try:
            while self.exit_code is None:
                self.manage_workers()
                self.sleep()
                self.dispatch_signals()
                self.reap()
                self.check_health()
            self.stop_workers(self.graceful)
        finally:
            for listener in self.listeners:
                listener.close(unlink=True)
            self.log.info("Shutting down: Master")
        return self.exit_code

    def sleep(self) -> None:
        try:
            select.select([self.wake_r], [], [], LOOP_INTERVAL)
        except InterruptedError:
            pass
        _drain(self.wake_r)

    def _install_signals(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._record_signal)

    def _record_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def dispatch_signals(self) -> None:
        while self.signals:
            signum = self.signals.popleft()
            name = signal.Signals(signum).name[3:].lower()
            getattr(self, f"handle_{name}")()

    # -- signal handlers (run in the loop, never in the signal handler) -----------------------------

    def handle_term(self) -> None:
        self.log.info("Handling signal: term")
        self.exit_code, self.graceful = EXIT_OK, True

    def handle_int(self) -> None:
        self.log.info("Handling signal: int")
        self.exit_code, self.graceful = EXIT_OK, False

    handle_quit = handle_int

    def handle_chld(self) -> None:
        pass  # the loop reaps after every wake-up

    # -- workers ------------------------------------------------------------------------------------

    def manage_workers(self) -> None:
        """Start workers until the configured count runs, respecting the crash back-off."""
        if self.exit_code is not None or monotonic() < self.respawn_at:
            return
        used = set(self.workers.values())
        free = (i for i in range(self.board.capacity) if i not in used)
        for _ in range(self.settings.workers - len(self.workers)):
            self.spawn(next(free))

    def spawn(self, index: int) -> None:
        self.board.reset(index, monotonic())
        pid = os.fork()
        if pid:
            self.workers[pid] = index
            return
        self._run_worker(index)  # never returns

    def _run_worker(self, index: int) -> None:
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            os.close(self.wake_r)
            os.close(self.wake_w)
            worker_class = WORKER_CLASSES[self.settings.worker_class]
            worker = worker_class(index, self.settings, self.listeners, self.board, self.log,
                                  f"prefork/{__version__}")
            code = worker.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        except BaseException:
            self.log.exception("Worker %d crashed", index)
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # noqa: BLE001 - the process ends on the next line anyway
                    pass
            os._exit(code)

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            index = self.workers.pop(pid, None)
            if index is not None:
                self.worker_exited(pid, index, status)

    def worker_exited(self, pid: int, index: int, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if code == EXIT_BOOT_FAILED and self.board.read(index)[1] == sb.BOOT_FAILED:
            message = self.board.message(index)
            if not self.booted:
                if self.exit_code is None:  # report once, not once per worker
                    self.log.error("Failed to load application %r: %s", self.settings.app_uri, message)
                    self.exit_code, self.graceful = EXIT_APP_LOAD, False
                return
            self.log.error("Worker %d (pid %d) failed to boot: %s", index, pid, message)
        elif self.exit_code is not None or code == 0:  # stopping, or the worker recycled itself
            self.log.info("Worker %d (pid %d) exited", index, pid)
            return
        else:
            cause = f"killed by signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            self.log.error("Worker %d (pid %d) died: %s", index, pid, cause)
        self.failures += 1
        self.respawn_at = monotonic() + min(MAX_BACKOFF, 0.1 * 2 ** (self.failures - 1))

    def check_health(self) -> None:
        """Note readiness; kill workers whose heartbeat is older than --timeout."""
        now = monotonic()
        timeout = self.settings.timeout
        for pid, index in list(self.workers.items()):
            heartbeat, state, _ = self.board.read(index)
            if state == sb.READY and not self.booted:
                self.booted = True
            if state == sb.READY and self.failures:
                self.failures = 0
            if timeout and now - heartbeat > timeout:
                self.log.critical("WORKER TIMEOUT (pid:%d): silent for %.0fs; killing it", pid, now - heartbeat)
                self.board.beat(index, now)  # report once, not on every loop
                _kill(pid, signal.SIGKILL)

    def stop_workers(self, graceful: bool) -> None:
        """Ask every worker to stop, wait up to graceful_timeout, then kill what is left."""
        sig = signal.SIGTERM if graceful else signal.SIGQUIT
        for pid in self.workers:
            _kill(pid, sig)
        deadline = monotonic() + self.settings.graceful_timeout
        while self.workers and monotonic() < deadline:
            self.sleep()
            if graceful and any(s in (signal.SIGINT, signal.SIGQUIT) for s in self.signals):
                break  # a fast stop requested during a graceful one
            self.signals.clear()
            self.reap()
        for pid in self.workers:
            _kill(pid, signal.SIGKILL)
        while self.workers:
            try:
                pid, _status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            self.workers.pop(pid, None)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
