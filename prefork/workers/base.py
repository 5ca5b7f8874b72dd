"""Life after fork, shared by every worker class.

Contract for subclasses: ``run_loop()`` builds its poller with ``self.make_poller()`` and runs
``event_loop(poller)``; the subclass says what ``adopt`` (a new or handed-over connection),
``readable`` (a parked connection has bytes or a hang-up) and ``can_accept`` mean for it. Connections
live in ``self.connections`` while parked; requests run only through ``serve_connection()`` (the one
request cycle). The loop calls ``housekeeping()`` every ``HOUSEKEEPING_INTERVAL`` seconds: heartbeat,
connection timeouts, parent check, log reopening, and the master's EVACUATE request.

Balance (see docs/design.md and ``balance.py``): the worker publishes its connection count in the
scoreboard and watches the listening sockets and the hand-off channel only while it is not ahead of
its least-loaded available sibling; at ``--worker-connections`` it closes its longest-idle keep-alive
connection to make room. ``hand_off(conn)`` gives a connection it cannot serve soon to the first free
sibling, with the bytes already read.

Signals (handlers only set state): TERM = graceful: take what waits in the accept queue and the
hand-off channel, close the listening sockets, finish requests in progress (responses say
``Connection: close``), answer the next request of each idle keep-alive connection the same way (or
let it expire at --keep-alive), exit. INT and QUIT = exit at once. USR1 = reopen log files. USR2 (sent
by the master to a silent worker) dumps every thread's stack. The others are the master's and ignored.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
from time import monotonic
from typing import Any

from .. import scoreboard as sb
from ..conn import Connection
from ..exits import EXIT_BOOT_FAILED
from ..hooks import call_hook
from ..loader import AppLoadError, load_app
from ..logs import AccessLog, capture_output, error_stream, open_log_stream
from ..process import drop_privileges, set_parent_death_signal, tune_malloc
from ..proctitle import set_title
from ..proxy import ProxyPolicy
from ..wsgi import HandlerOptions, WSGIHandler
from .cycle import RequestCycle
from .loop import EventLoop
from .sharing import PoolMember


class Worker(EventLoop, RequestCycle, PoolMember):
    """A worker: its state (state.py), its event loop (loop.py), its request cycle (cycle.py), its part
    in the pool's balance (sharing.py), and here its life as a process. Subclasses: sync, threaded."""

    # -- process life (main thread) ---------------------------------------------------------------

    def main(self, app: Any, uid: int | None, gid: int | None) -> int:
        """Run the worker in the forked child; the return value is the process exit status.

        ``app`` is the application when the master preloaded it, else None (loaded here).
        """
        tune_malloc()
        self._install_signals()
        self._set_title("booting")
        try:
            drop_privileges(uid, gid)
            # After the UID change: the kernel clears the parent-death signal when credentials change.
            set_parent_death_signal(signal.SIGTERM)
            if os.getppid() != self.ppid:  # the master died before prctl took effect
                return 0
            if app is None:
                app = load_app(self.settings.app_uri, self.settings.raw_paste_global_conf)
        except (AppLoadError, OSError) as exc:
            self.board.set_message(self.index, str(exc))
            self.board.set_state(self.index, sb.BOOT_FAILED)
            return EXIT_BOOT_FAILED
        self.handler = self._make_handler(app)
        Connection.configure(self._progress, self.settings.min_write_rate, self.settings.write_timeout)
        if self.settings.capture_output:
            capture_output(self.log)
        self.hook("post_worker_init")
        if self.settings.reload:
            from ..reloader import start_reloader

            start_reloader(self.settings.reload_extra_files, self._source_changed)
        self.board.beat(self.index, monotonic())
        self.board.set_state(self.index, sb.READY)
        self.log.info("Booted worker %d (pid %d)", self.index, os.getpid())
        self.run_loop()
        if self.board.stats_size:
            self.publish_stats(self.connections, final=True)  # the last counts, for the master's totals
        return 0

    def _make_handler(self, app: Any) -> WSGIHandler:
        settings = self.settings
        access_log = None
        if settings.accesslog:
            access_log = AccessLog(
                open_log_stream(settings.accesslog), settings.access_log_format, settings.access_log_json
            )
        forwarder_headers = frozenset(
            name.strip().upper() for name in settings.forwarder_headers.split(",") if name.strip()
        ) - {"PATH_INFO"}  # never from a header: "GET /public" + "PATH_INFO: /admin" would bypass the proxy
        return WSGIHandler(
            app,
            HandlerOptions(
                limits=self.limits,
                log=self.log,
                errors=error_stream(self.log),
                multithread=self.multithread,
                server_software=self.server_software,
                proxy=ProxyPolicy(
                    settings.forwarded_allow_ips, settings.secure_scheme_headers, settings.use_forwarded_for
                ),
                forwarder_headers=forwarder_headers,
                access_log=access_log,
                statsd=self.statsd,
                observe=bool(settings.metrics_bind),
                keepalive=settings.keepalive > 0,
                pre_request=settings.pre_request,
                post_request=settings.post_request,
                worker=self,
            ),
        )

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_quit)
        signal.signal(signal.SIGQUIT, self._on_quit)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        for ignored in (signal.SIGHUP, signal.SIGWINCH, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(ignored, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # The master sends SIGUSR2 to a silent worker before killing it: every thread's stack goes to
        # the error log (written from C, so it works even when Python is stuck), which is what an
        # operator needs to find the hang. Crashes (SIGSEGV, ...) dump their stacks too.
        errors = error_stream(self.log)
        signal.signal(signal.SIGUSR2, self._on_abort)  # runs after the dump, if Python gets to run
        faulthandler.register(signal.SIGUSR2, file=errors, all_threads=True, chain=True)
        faulthandler.enable(file=errors, all_threads=True)

    def _on_term(self, signum: int, frame: Any) -> None:
        self.alive = False
        handler = getattr(self, "handler", None)  # a TERM may come before the application loaded
        if handler is not None:
            handler.reuse_connections = False

    def _on_quit(self, signum: int, frame: Any) -> None:
        self.hook("worker_int")
        sys.exit(0)  # fast stop: unwind now, whatever the worker is doing

    def _on_abort(self, signum: int, frame: Any) -> None:
        self.hook("worker_abort")

    # gunicorn's names, for server hooks written for gunicorn
    @property
    def cfg(self) -> Any:
        return self.settings

    @property
    def age(self) -> int:
        return self.index

    def hook(self, name: str, *args: Any) -> None:
        call_hook(self.settings, self.log, name, self, *args)

    def publish_stats(self, connections: dict[int, Connection], final: bool = False) -> None:
        """Count the requests observed since the last time and copy the totals into the scoreboard
        for the master (--metrics-bind). The batch taken is the one set aside last time: a request
        thread that read the list just before the swap appends to it in the next few bytecodes, never
        half a second later (``final``: the threads are gone, take everything)."""
        handler = self.handler
        batch, self.set_aside = self.set_aside, handler.observations or []
        handler.observations = []
        if final:
            batch += self.set_aside
            self.set_aside = []
        stats = self.stats
        stats.observe_batch(batch)
        stats.idle = sum(1 for conn in list(connections.values()) if not (conn.busy or conn.head_since))
        self.board.stats_block(self.index)[:] = stats.pack()

    def _source_changed(self, path: str) -> None:
        """--reload: a watched file changed (reloader thread): the master starts new workers."""
        self.log.info("Worker %d: %s changed; reloading", self.index, path)
        os.kill(self.ppid, signal.SIGHUP)

    def _on_usr1(self, signum: int, frame: Any) -> None:
        self.reopen_logs = True

    def _set_title(self, state: str) -> None:
        title = f"worker {self.index} [{self.settings.proc_name or self.settings.app_uri}] {state}"
        if title != self.title:
            self.title = title
            set_title(title)

    def run_loop(self) -> None:
        raise NotImplementedError

    def _progress(self) -> None:
        """Heartbeat before a client I/O call that may block (see conn.py: timeouts in order)."""
        self.board.beat(self.index, monotonic())

    def describe(self, now: float) -> str:
        """State for the process title."""
        return f"idle, {self.requests} requests{self.handoff_summary()}"

    def handoff_summary(self) -> str:
        if not (self.handed_off or self.taken_over):
            return ""
        return f", handed off {self.handed_off}, taken over {self.taken_over}"
