"""The master process: binds or inherits the sockets, forks the workers, then only supervises.

It never reads a client byte. Signal handlers only record the signal and wake the loop (through
``signal.set_wakeup_fd``); the loop calls ``handle_<signal>()``, reaps children, and carries out
the actions that the pool's rules (``plan.py``, through ``Pool.plan``) decide: start, retire, abort
or kill workers, notify systemd, halt.

Signals (as in gunicorn; the table is ``signal_table.py``, rendered in docs/signals.md): HUP reload
(new generation first, old one drained once it is ready), TERM graceful stop, INT/QUIT fast stop, USR1
reopen logs, USR2 binary upgrade (a new master inherits the sockets), WINCH stop the workers but keep
the master (after USR2), TTIN/TTOU one worker more/less.
"""

from __future__ import annotations

import gc
import os
import select
import signal
from time import monotonic
from typing import Any

from . import __version__
from .balance import client_io_timeout
from .children import Children
from .config import ConfigError
from .config import load as load_settings
from .control import ControlServer
from .exits import EXIT_APP_LOAD, EXIT_CONFIG, EXIT_OK
from .handoff import Channel
from .loader import AppLoadError, load_app
from .logs import reopen_error_log
from .process import kill_quietly, remove_pidfile, resolve_user, write_pidfile
from .proctitle import set_title
from .prometheus_multiproc import PROMETHEUS_DIR, clear_prometheus_dir
from .settings import SETTINGS
from .signal_table import HANDLED_SIGNALS
from .sockets import BindError, Listener, bind, from_fd
from .systemd import listen_fds
from .upgrade import ADOPTED_WORKERS_ENV, INHERITED_FDS_ENV, Upgrade


class Arbiter(Children, Upgrade):
    """The master: its state (master_state.py), how it acts on processes (children.py) and re-executes
    itself (upgrade.py), and here its start, loop and signal handlers."""

    def run(self) -> int:
        code = self._start()
        if code is not None:
            return code
        try:
            while self.exit_code is None or monotonic() < self.stop_at:  # stop_at: --shutdown-delay
                stopping = self.exit_code is not None and not self.stop_at
                self._apply(self.pool.plan(monotonic(), stopping))
                if self.statsd is not None and len(self.pool.workers) != self.reported_workers:
                    self.reported_workers = len(self.pool.workers)
                    self.statsd.workers(self.reported_workers)
                self._sleep()
                self._dispatch_signals()
                self._reap()
            self.notifier.stopping("stopping")
            self._stop_workers()
        finally:
            self._close_listeners()
            if self.channel is not None:
                self.channel.close()
            if self.control is not None and self.control_listener is not None:
                self.control.close()
                self.control_listener.close()
            if self.settings.pidfile:
                remove_pidfile(self.settings.pidfile)
                remove_pidfile(self.settings.pidfile + ".oldbin")  # ours if we were upgraded (USR2)
            self.log.info("Shutting down: Master")
            self.hook("on_exit")
        return self.exit_code

    def _start(self) -> int | None:
        settings = self.settings
        if settings.umask is not None:
            os.umask(settings.umask)
        if PROMETHEUS_DIR in os.environ:
            clear_prometheus_dir(os.environ[PROMETHEUS_DIR])
        self.hook("on_starting")
        try:
            self.uid, self.gid = resolve_user(settings.user, settings.group)
            self.listeners = self._listeners()
            if settings.metrics_bind:
                self.control_listener = bind(settings.metrics_bind, 64)
                self.control = ControlServer(self.control_listener.sock, self._control_response)
        except (BindError, ValueError) as exc:
            self.log.error("%s", exc)
            return EXIT_CONFIG
        for listener in self.listeners:
            listener.set_timeouts(
                client_io_timeout(settings.read_timeout, settings.timeout),
                client_io_timeout(settings.write_timeout, settings.timeout),
            )
        self.channel = Channel()
        if settings.certfile:
            from .tls import server_context  # ssl weighs 5 MB in every process: only with --certfile

            try:
                server_context(settings)  # a bad certificate or key stops the start here, not in each worker
            except (OSError, ValueError) as exc:
                self.log.error("TLS: cannot use --certfile %s: %s", settings.certfile, exc)
                return EXIT_CONFIG
        if settings.certfile and settings.proxy_protocol:
            self.log.error("--proxy-protocol together with --certfile is not supported")
            return EXIT_CONFIG
        if settings.preload_app:
            try:
                self.app = load_app(settings.app_uri, settings.raw_paste_global_conf)
            except AppLoadError as exc:
                self.log.error("Failed to load application %r: %s", settings.app_uri, exc)
                return EXIT_APP_LOAD
            gc.freeze()  # keep the preloaded objects out of the collector so their pages stay shared
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._record_signal)
        if settings.pidfile:
            write_pidfile(settings.pidfile)
        set_title(f"master [{self.name}]")
        self.log.info("Starting prefork %s", __version__)
        for listener in self.listeners:
            self.log.info("Listening at: %s (%d)", listener.address, os.getpid())
        self.log.info("Using worker: %s", settings.worker_class)
        self.pool.adopt(os.environ.pop(ADOPTED_WORKERS_ENV, ""))
        self.hook("when_ready")
        return None

    def _listeners(self) -> list[Listener]:
        """systemd's sockets, else those of the master we replace (USR2), else bind -b addresses."""
        inherited = os.environ.pop(INHERITED_FDS_ENV, "")
        systemd_fds = listen_fds()
        if systemd_fds:
            return [from_fd(fd, owned=False) for fd in systemd_fds]
        if inherited:
            self.announce_main_pid = ADOPTED_WORKERS_ENV not in os.environ  # USR2, not a re-exec
            return [from_fd(int(fd), owned=True) for fd in inherited.split(",")]
        owner = (self.uid, self.gid)
        return [bind(address, self.settings.backlog, self.settings.umask, owner) for address in self.settings.bind]

    def _close_listeners(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.listeners = []

    def _stop_listening(self) -> None:
        """Graceful stop: no new connections, then close our copies; the workers take what is queued.

        Sockets that outlive us are left as they are: systemd's (it keeps queueing for the next
        start) and those shared with an upgraded master.
        """
        for listener in self.listeners:
            if listener.owned and not self.upgrade_child:
                listener.refuse_new()
        self._close_listeners()

    def _sleep(self) -> None:
        timeout = 1.0
        if self.notifier.watchdog_interval:
            timeout = min(timeout, self.notifier.watchdog_interval / 2)
        control = self.control
        try:
            if control is None:
                select.select([self.wake_r], [], [], timeout)
            else:
                readable, writable, _ = select.select(
                    [self.wake_r, *control.read_fds()], control.write_fds(), [], timeout
                )
                control.service(readable, writable)
        except InterruptedError:
            pass
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass
        self.notifier.watchdog(monotonic())

    def _control_response(self, path: str) -> tuple[int, str, str]:
        """--metrics-bind: what the master answers (control.py serves it)."""
        if path == "/livez":
            return 200, "text/plain", "ok\n"
        from .metrics import prometheus, status_document, take_snapshot  # only with --metrics-bind

        stopping = self.exit_code is not None
        snapshot = take_snapshot(self.pool, self.listeners, stopping, monotonic())
        if path == "/readyz":
            if snapshot.ready:
                return 200, "text/plain", "ready\n"
            return 503, "text/plain", "stopping\n" if stopping else "no ready worker\n"
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", prometheus(snapshot)
        if path == "/status":
            return 200, "application/json", status_document(snapshot)
        return 404, "text/plain", "try /metrics, /status, /livez or /readyz\n"

    def _record_signal(self, signum: int, frame: Any) -> None:
        self.signals.append(signum)

    def _dispatch_signals(self) -> None:
        while self.signals:
            signum = self.signals.popleft()
            name = signal.Signals(signum).name[3:].lower()
            if signum != signal.SIGCHLD:
                self.log.info("Handling signal: %s", name)
            getattr(self, f"handle_{name}")()

    # -- signal handlers (run in the loop, never in the signal handler) -----------------------------

    def handle_chld(self) -> None:
        pass  # the loop reaps after every wake-up

    def handle_term(self) -> None:
        if self.exit_code is None and self.settings.shutdown_delay:
            self.stop_at = monotonic() + self.settings.shutdown_delay
            self.notifier.stopping(f"stopping in {self.settings.shutdown_delay}s")
            set_title(f"master [{self.name}] stopping")
        self.exit_code, self.graceful = EXIT_OK, True

    def handle_int(self) -> None:
        self.exit_code, self.graceful, self.stop_at = EXIT_OK, False, 0.0

    handle_quit = handle_int

    def handle_hup(self) -> None:
        if self.exit_code is not None:
            return
        if self.settings.preload_app:
            self._reexec_for_preload()
            return
        self._reload_settings()
        self.hook("on_reload")
        if self.pool.reload():
            self.notifier.reloading()

    def _reload_settings(self) -> None:
        """Re-read the command line, environment and config file; the new generation uses them."""
        if self.argv is None:
            return
        try:
            new, _ = load_settings(self.argv)
        except (ConfigError, SystemExit) as exc:
            self.log.error("Configuration reload failed, keeping the current settings: %s", exc)
            return
        for setting in SETTINGS:
            old_value, new_value = getattr(self.settings, setting.name), getattr(new, setting.name)
            if not setting.hup and new_value != old_value:
                self.log.warning("Setting %s changed: it takes effect on restart, not on reload", setting.name)
                setattr(new, setting.name, old_value)
        self.log.setLevel(new.loglevel.upper())
        self.settings = new
        if new.workers != self.pool.size:
            self.hook("nworkers_changed", new.workers, self.pool.size)
        self.pool.configure(new.workers, new.timeout)

    def handle_ttin(self) -> None:
        self._resize(+1)

    def handle_ttou(self) -> None:
        self._resize(-1)

    def _resize(self, delta: int, minimum: int = 1) -> None:
        before = self.pool.size
        wanted = self.pool.resize(delta, minimum)
        if wanted is None:
            return
        if wanted != before:
            self.hook("nworkers_changed", wanted, before)
        self.notifier.status(self.pool.status())

    def handle_usr1(self) -> None:
        reopen_error_log(self.log)
        for pid in self.pool.workers:
            kill_quietly(pid, signal.SIGUSR1)

    def handle_winch(self) -> None:
        if self.upgrade_child:  # gunicorn's meaning: after USR2, retire this master's workers
            self._resize(-self.pool.size, minimum=0)
        else:
            self.log.info("SIGWINCH ignored: no binary upgrade in progress")
