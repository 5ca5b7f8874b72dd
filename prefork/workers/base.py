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
import logging
import os
import signal
import sys
from collections.abc import Callable
from time import monotonic
from typing import Any

from .. import scoreboard as sb
from ..balance import BALANCE_INTERVAL
from ..conn import Connection
from ..exits import EXIT_BOOT_FAILED
from ..handoff import Channel
from ..hooks import call_hook
from ..http.errors import HeaderFieldsTooLarge, HTTPError, RequestTimeout
from ..http.parser import Limits, RequestHead
from ..http.response import server_headers
from ..loader import AppLoadError, load_app
from ..logs import AccessLog, capture_output, error_stream, open_log_stream, reopen_error_log
from ..pool import jittered_max_requests
from ..process import drop_privileges, release_free_memory, set_parent_death_signal, tune_malloc
from ..proctitle import set_title
from ..proxy import ProxyPolicy
from ..sockets import Listener
from ..stats import RequestStats
from ..wsgi import HandlerOptions, WSGIHandler
from .poller import Poller
from .sharing import HOUSEKEEPING_INTERVAL, PoolMember

ACCEPT_BACKOFF = 0.5  # seconds without accepting after accept() failed (EMFILE, ENFILE, ENOMEM)
ACCEPT_REPORT_INTERVAL = 10.0
# Incomplete request heads larger than BIG_HEAD are tracked; together they may hold HEAD_MEMORY_BUDGET
# bytes per worker, beyond which the largest get 431. Without it, a thousand clients each stopping
# just short of the head limits (about 0.8 MiB with the defaults) would hold 800 MB of one worker.
BIG_HEAD = 65536
HEAD_MEMORY_BUDGET = 32 << 20


class Worker(PoolMember):
    multithread = False
    handler: WSGIHandler  # built after the fork, once the application is loaded (main)
    waiting: Any = ()  # complete heads waiting for a request thread (threaded worker)

    def __init__(self, index: int, settings: Any, listeners: list[Listener], board: sb.Scoreboard,
                 log: logging.Logger, server_software: str, channel: Channel | None = None,
                 statsd: Any = None) -> None:
        self.index = index
        self.settings = settings
        self.listeners = listeners
        self.channel = channel if settings.handoff_delay > 0 else None  # where waiting connections go
        self.statsd = statsd
        self.stats = RequestStats()  # --metrics-bind: this worker's counts, kept by the event loop
        self.set_aside: list[tuple] = []  # observations taken from the handler at the last publish
        self.board = board
        self.log = log
        self.server_software = server_software
        self.alive = True
        self.reopen_logs = False
        self.ppid = os.getpid()  # built in the master, just before the fork
        self.pid = 0
        self.requests = 0
        self.max_requests = jittered_max_requests(settings.max_requests, settings.max_requests_jitter)
        self.limits = Limits(
            settings.limit_request_line,
            settings.limit_request_fields,
            settings.limit_request_field_size,
            settings.limit_request_body,
        )
        self.tls = None  # an SSLContext with --certfile
        self.tls_connection: type[Connection] = Connection  # its Connection class, then TLSConnection
        if settings.certfile:
            from ..tls import TLSConnection, server_context  # ssl weighs 5 MB: only with --certfile

            self.tls = server_context(settings)
            self.tls_connection = TLSConnection
        self.proxy_protocol = None  # a ProxyPolicy naming who must send PROXY headers, when enabled
        if settings.proxy_protocol:
            self.proxy_protocol = ProxyPolicy(settings.proxy_allow_ips, {}, False)
        self.connections: dict[int, Connection] = {}
        self.entry: tuple = ()  # scoreboard entry of the main thread, set once booted
        self.next_housekeeping = 0.0
        self.drain_deadline = 0.0
        self.title = ""
        self.handed_off = 0  # connections given to siblings
        self.taken_over = 0  # connections taken from them
        self.published_connections = -1  # the count last written to the scoreboard
        self.balance = (-1, 0.0, True)  # (connections, time, verdict) of the last look at the siblings
        self.evacuating = False  # the master asked for our connections: it is about to kill us
        self.take_paused_until = 0.0  # no taking from the hand-off channel before (after we gave)
        self.big_heads: dict[Connection, int] = {}  # incomplete heads over BIG_HEAD -> their size
        self.accept_failures = 0
        self.accept_paused_until = 0.0
        self.next_accept_report = 0.0
        self.gates_due = 0.0  # when update_gates runs next (also whenever the connection count changes)
        self.gates_count = -1
        self.poll_wait = HOUSEKEEPING_INTERVAL  # how long the loop may wait for events (update_gates)

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
        self.entry = self.board.entry(self.index, 0)
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
            access_log = AccessLog(open_log_stream(settings.accesslog), settings.access_log_format,
                                   settings.access_log_json)
        forwarder_headers = frozenset(
            name.strip().upper() for name in settings.forwarder_headers.split(",") if name.strip()
        ) - {"PATH_INFO"}  # never from a header: "GET /public" + "PATH_INFO: /admin" would bypass the proxy
        return WSGIHandler(app, HandlerOptions(
            limits=self.limits,
            log=self.log,
            errors=error_stream(self.log),
            multithread=self.multithread,
            server_software=self.server_software,
            proxy=ProxyPolicy(settings.forwarded_allow_ips, settings.secure_scheme_headers,
                              settings.use_forwarded_for),
            forwarder_headers=forwarder_headers,
            access_log=access_log,
            statsd=self.statsd,
            observe=bool(settings.metrics_bind),
            keepalive=settings.keepalive > 0,
            pre_request=settings.pre_request,
            post_request=settings.post_request,
            worker=self,
        ))

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

    # -- the event loop shared by the worker classes (its thread only) --------------------------

    def make_poller(self) -> Poller:
        """A poller over the listening sockets and the hand-off channel."""
        return Poller({listener.sock.fileno(): listener for listener in self.listeners}, self.channel)

    def event_loop(self, poller: Poller) -> None:
        """Accept, read, time out and drain; subclasses say what ``adopt``, ``readable`` and
        ``can_accept`` mean for them. Each turn costs a few attribute tests besides the events:
        the balance gates are re-decided only when they may have changed (``update_gates``)."""
        self.poller = poller
        connections = self.connections
        readable = self.readable
        poll = poller.poll
        draining = False
        while self.alive or self.running():
            if not (self.alive or draining):
                draining = True
                self.start_drain(poller, self.adopt)
                continue
            events = poll(self.before_poll() if self.waiting else self.poll_wait)
            now = monotonic()
            for fd, _ in events:
                conn = connections.get(fd)
                if conn is not None:
                    readable(conn)
                else:
                    self.new_connection(poller, fd, now)
            if now >= self.next_housekeeping:
                self.housekeeping(now, connections)
            if (now >= self.gates_due or len(connections) != self.gates_count) and self.alive:
                self.update_gates(now)

    def new_connection(self, poller: Poller, fd: int, now: float) -> None:
        """An event on a listener, the hand-off channel or the wake-up pipe."""
        if fd in poller.listeners:
            conn = self.accept(poller.listeners[fd], now)
            if conn is not None:
                if len(self.connections) >= self.settings.worker_connections:
                    self.reclaim()
                self.adopt(conn)
        elif fd == poller.channel_fd:
            conn = self.take_over(now)
            if conn is not None:
                self.adopt(conn)
        else:
            poller.is_wake(fd)

    def before_poll(self) -> float:
        """With connections in ``self.waiting`` (threaded worker): work due before the loop waits
        again; returns how long it may wait."""
        return self.poll_wait

    def adopt(self, conn: Connection) -> None:
        """A connection just accepted: serve it or park it in ``self.connections``."""
        raise NotImplementedError

    def readable(self, conn: Connection) -> None:
        """``conn``, parked in the loop, has bytes (or a hang-up) to read."""
        raise NotImplementedError

    def forget(self, conn: Connection) -> None:
        """Close a connection; any thread may call it for a connection it owns. Closing the last
        descriptor of a socket also removes it from epoll."""
        self.connections.pop(conn.fd, None)
        conn.close()

    def _progress(self) -> None:
        """Heartbeat before a client I/O call that may block (see conn.py: timeouts in order)."""
        self.board.beat(self.index, monotonic())

    def running(self) -> bool:
        """Whether the loop goes on: while alive, then until the drain (started by the loop) ends."""
        if self.alive or not self.drain_deadline:
            return True
        return bool(self.connections) and monotonic() < self.drain_deadline

    def start_drain(self, poller: Poller, adopt: Callable[[Connection], None]) -> None:
        """Graceful stop: take the connections already in the kernel's accept queue, then close our
        copies of the listening sockets; ``adopt`` puts each accepted connection in the loop."""
        self.drain_deadline = monotonic() + self.settings.graceful_timeout
        self.board.set_state(self.index, sb.DRAINING)
        self._set_title("draining")
        poller.set_accepting(False)
        poller.set_taking(False)
        now = monotonic()
        for listener in self.listeners:
            while (conn := self.accept(listener, now)) is not None:
                adopt(conn)
            poller.drop_listener(listener.sock.fileno())
            listener.sock.close()
        if self.channel is not None:
            while (conn := self.take_over(now)) is not None:
                adopt(conn)
        self.housekeeping(now, self.connections)

    def liveness(self, now: float) -> float:
        """The heartbeat value: the worker counts as silent from this time on."""
        return now

    def housekeeping(self, now: float, connections: dict[int, Connection]) -> None:
        """Heartbeat, parent check, and the header/idle timeouts of parked connections."""
        self.next_housekeeping = now + HOUSEKEEPING_INTERVAL
        self.board.beat(self.index, self.liveness(now))
        if self.board.asked(self.index) == sb.EVACUATE:
            self.evacuate(now)
        elif self.evacuating:  # the master took its request back: the worker recovered in time
            self.evacuating = False
        elif self.alive and self.channel is not None:
            self.rebalance(now)
        self.board.count_request(self.index, self.requests)
        if self.board.stats_size:
            self.publish_stats(connections)
        if self.alive:
            self._set_title(self.describe(now))
        if os.getppid() != self.ppid:
            self.log.warning("Master went away; worker %d exits", self.index)
            self._on_term(0, None)
        if self.reopen_logs:
            self.reopen_logs = False
            reopen_error_log(self.log)
            if self.handler.access_log is not None:
                self.handler.access_log.reopen()
        if self.big_heads:
            self._forget_finished_heads()
        header_timeout = self.settings.header_timeout
        keepalive = self.settings.keepalive
        for conn in list(connections.values()):
            if conn.busy:
                continue  # a request thread owns it
            if conn.head_since:
                if now - conn.head_since > header_timeout:
                    self.reject(conn, RequestTimeout("request head not received in time"))
                    self.forget(conn)
            elif now - conn.idle_since > (keepalive if conn.requests else header_timeout):
                # Idle too long. A draining worker keeps its idle connections to this same bound
                # and answers their next request with Connection: close: closing one at once
                # races with a client sending on it, and clients that do not retry (requests,
                # locust) would see that request fail during every reload.
                self.forget(conn)

    def describe(self, now: float) -> str:
        """State for the process title."""
        return f"idle, {self.requests} requests{self.handoff_summary()}"

    def handoff_summary(self) -> str:
        if not (self.handed_off or self.taken_over):
            return ""
        return f", handed off {self.handed_off}, taken over {self.taken_over}"

    def _accept_failed(self, listener: Listener, exc: OSError, now: float) -> None:
        """Out of descriptors or memory: stop accepting for ACCEPT_BACKOFF (the connection stays in the
        kernel queue for a sibling or for later) and report once per ACCEPT_REPORT_INTERVAL."""
        self.accept_failures += 1
        self.accept_paused_until = now + ACCEPT_BACKOFF
        self.poller.set_accepting(False)
        self.poll_wait = BALANCE_INTERVAL  # look again soon (update_gates)
        if now >= self.next_accept_report:
            self.next_accept_report = now + ACCEPT_REPORT_INTERVAL
            self.log.error("accept() failed on %s: %s (%d times so far); pausing accepting %.1fs each time",
                           listener.address, exc, self.accept_failures, ACCEPT_BACKOFF)

    def accept(self, listener: Listener, now: float) -> Connection | None:
        """Accept one connection and read what it already sent, without blocking."""
        try:
            sock, peer = listener.sock.accept()
        except (BlockingIOError, InterruptedError):
            return None  # another worker took it
        except OSError as exc:  # EMFILE and friends: keep serving the connections we have
            self._accept_failed(listener, exc, now)
            return None
        listener.tune_accepted(sock)
        if self.tls is None:
            conn = Connection(sock, self.handler.connection_environ(peer, listener.server_address, "http", sock), now)
        else:
            tls_sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            environ = self.handler.connection_environ(peer, listener.server_address, "https", tls_sock)
            conn = self.tls_connection(tls_sock, environ, now)
        conn.trusted = self.handler.proxy.trusts(peer)
        if self.proxy_protocol is not None:
            conn.proxy_header_pending = self.proxy_protocol.trusts(peer)
        if conn.recv_nowait():
            return conn
        conn.close()
        return None

    # -- the request cycle (runs in the thread that owns the connection) -----------------------

    def next_head(self, conn: Connection) -> RequestHead | None:
        """The next complete request head buffered on ``conn``, or None. Raises HTTPError."""
        head = conn.next_head(self.limits)
        if head is None and conn.scanned > BIG_HEAD:
            self._bound_head_memory(conn)
        return head

    def _bound_head_memory(self, conn: Connection) -> None:
        """Keep the incomplete big heads of this worker within HEAD_MEMORY_BUDGET: over it, the
        largest is refused (431), this one included. Raises HTTPError for ``conn``."""
        big = self.big_heads
        big[conn] = conn.scanned
        self._forget_finished_heads()
        while sum(big.values()) > HEAD_MEMORY_BUDGET:
            largest = max(big, key=big.__getitem__)
            del big[largest]
            if largest is conn:
                raise HeaderFieldsTooLarge("too much memory held by incomplete request heads")
            if largest.busy:
                continue
            self.connections.pop(largest.fd, None)
            self.reject(largest, HeaderFieldsTooLarge("too much memory held by incomplete request heads"))
            self.poller.forget(largest.fd)
            largest.close()
        if not big:
            release_free_memory()

    def _forget_finished_heads(self) -> None:
        """Drop the big heads that completed or whose connection closed since they were counted."""
        big = self.big_heads
        for conn in [c for c in big if not c.head_since or c.sock.fileno() < 0]:
            del big[conn]
            if not big:
                release_free_memory()

    def serve_connection(self, conn: Connection, head: RequestHead | None = None, entry: tuple = ()) -> bool:
        """Run ``head`` (if given) and every complete request buffered on ``conn``; ``entry`` is the
        calling thread's scoreboard entry (the worker's first one by default).

        Returns False when the caller must close the connection, True when it waits for more.
        """
        run = self.run_request
        entry = entry or self.entry
        limits = self.limits
        try:
            while True:
                if head is None:
                    head = conn.next_head(limits)
                    if head is None:
                        if conn.scanned > BIG_HEAD:
                            self._bound_head_memory(conn)
                        return True
                keep = run(conn, head, entry)
                head = None
                self.requests += 1
                conn.requests += 1
                if self.requests == self.max_requests:
                    self._ask_recycle()
                if not keep:
                    return False
                if not conn.buf:
                    conn.idle_since = monotonic()
                    return True
        except HTTPError as exc:
            self.reject(conn, exc)
            return False

    def run_request(self, conn: Connection, head: RequestHead, entry: tuple) -> bool:
        """One request, announced in the scoreboard while it runs (the master reports it on timeout)."""
        raise NotImplementedError

    def _ask_recycle(self) -> None:
        """--max-requests reached: the master starts a replacement, then retires this worker."""
        self.log.info("Worker %d reached %d requests; asking to be recycled", self.index, self.requests)
        self.board.set_message(self.index, f"recycled after {self.requests} requests")
        self.board.set_state(self.index, sb.RECYCLE)

    def reject(self, conn: Connection, exc: HTTPError) -> None:
        """Answer a request we refuse before the application sees it; the caller closes ``conn``."""
        self.log.debug("Rejected request: %s %s", exc.status, exc.reason)
        conn.send_nowait(exc.render(server_headers()))
        conn.linger = True
