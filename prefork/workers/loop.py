"""The worker's event loop, shared by every worker class: accept, read, time out, drain.

Mixed into ``Worker`` (base.py); its methods run on a worker, in the event-loop thread. The loop
waits on the poller (listening sockets, the hand-off channel, parked connections, the wake-up pipe),
hands readable connections to the subclass's ``readable``, new ones to ``adopt``, and runs
``housekeeping`` every HOUSEKEEPING_INTERVAL: heartbeat, the header and keep-alive timeouts of
parked connections, the master's EVACUATE request, stats, the parent check, log reopening.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from time import monotonic

from .. import scoreboard as sb
from ..balance import BALANCE_INTERVAL
from ..conn import Connection
from ..http.errors import RequestTimeout
from ..logs import reopen_error_log
from ..sockets import Listener
from .poller import Poller
from .state import HOUSEKEEPING_INTERVAL, WorkerState

ACCEPT_BACKOFF = 0.5  # seconds without accepting after accept() failed (EMFILE, ENFILE, ENOMEM)
ACCEPT_REPORT_INTERVAL = 10.0


class EventLoop(WorkerState):
    """The loop of one worker; subclasses say what ``adopt`` and ``readable`` mean for them."""

    def make_poller(self) -> Poller:
        """A poller over the listening sockets and the hand-off channel."""
        return Poller({listener.sock.fileno(): listener for listener in self.listeners}, self.channel)

    def event_loop(self, poller: Poller, holder: int = 0) -> None:
        """Accept, read, time out and drain; subclasses say what ``adopt``, ``readable`` and
        ``can_accept`` mean for them. Each turn costs a few attribute tests besides the events:
        the balance gates are re-decided only when they may have changed (``update_gates``).

        ``holder`` names the thread running the loop: the loop returns as soon as
        ``self.loop_holder`` names another (the threaded worker moves the loop between threads).
        """
        self.poller = poller
        connections = self.connections
        readable = self.readable
        poll = poller.poll
        while self.loop_holder == holder and (self.alive or self.running()):
            if not (self.alive or self.drain_deadline):
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
            if self.ready:  # threaded worker: heads read above, served now (the loop may be taken)
                self.serve_ready()
            if self.loop_holder != holder:
                break  # another thread took the loop while this one ran a request
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

    def running(self) -> bool:
        """Whether the loop goes on: while alive, then until the drain (started by the loop) ends."""
        if self.alive or not self.drain_deadline:
            return True
        return bool(self.connections) and monotonic() < self.drain_deadline

    def start_drain(self, poller: Poller, adopt: Callable[[Connection], None]) -> None:
        """Graceful stop: take the connections already in the kernel's accept queue, then close our
        copies of the listening sockets; ``adopt`` puts each accepted connection in the loop."""
        self.drain_deadline = monotonic() + self.settings.graceful_timeout
        self.log.info(
            "Worker %d (pid %d) stopping gracefully, %d connections open",
            self.index,
            os.getpid(),
            len(self.connections),
        )
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

    def _accept_failed(self, listener: Listener, exc: OSError, now: float) -> None:
        """Out of descriptors or memory: stop accepting for ACCEPT_BACKOFF (the connection stays in the
        kernel queue for a sibling or for later) and report once per ACCEPT_REPORT_INTERVAL."""
        self.accept_failures += 1
        self.accept_paused_until = now + ACCEPT_BACKOFF
        self.poller.set_accepting(False)
        self.poll_wait = BALANCE_INTERVAL  # look again soon (update_gates)
        if now >= self.next_accept_report:
            self.next_accept_report = now + ACCEPT_REPORT_INTERVAL
            self.log.error(
                "accept() failed on %s: %s (%d times so far); pausing accepting %.1fs each time",
                listener.address,
                exc,
                self.accept_failures,
                ACCEPT_BACKOFF,
            )

    def accept(self, listener: Listener, now: float) -> Connection | None:
        """Accept one connection and read what it already sent, without blocking."""
        try:
            sock, peer = listener.accept()
        except (BlockingIOError, InterruptedError):
            return None  # another worker took it
        except OSError as exc:  # EMFILE and friends: keep serving the connections we have
            self._accept_failed(listener, exc, now)
            return None
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
