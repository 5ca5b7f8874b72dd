"""The sync worker: one request executes at a time, yet idle and slow connections never hold it.

One epoll loop owns every connection of the worker. Connections waiting for (the rest of) a request
head are parked in the loop; a request runs only once its head is complete, then its connection goes
back to the loop if it is kept alive.

Threads: the **main thread** runs the loop and every request. A **hand-off watcher** thread wakes a
few times per ``--handoff-delay`` and, only while the main thread has been inside one request for
longer than that delay, gives each parked connection that has a request waiting to a free sibling
(and every parked connection when the master asked this worker to EVACUATE before killing it), so
that no client waits behind a slow request.

The two threads never use a connection at the same time, without a lock on the request path: the
watcher raises ``watcher_busy``, then works only if the main thread is still inside the request it
saw (``serving_since`` unchanged); the main thread clears ``serving_since`` when the request ends,
then waits while ``watcher_busy`` is up. Attribute stores and loads are atomic and ordered under the
GIL, so either the watcher sees the request ended and does nothing, or the main thread sees the
watcher at work and waits for it (a lock here measurably cost CPU on every request).
"""

from __future__ import annotations

import select
import threading
from time import monotonic, sleep

from .. import scoreboard as sb
from ..conn import Connection
from ..http.parser import RequestHead
from .base import Worker


class SyncWorker(Worker):
    def run_loop(self) -> None:
        poller = self.make_poller()
        self.poller = poller
        self.watcher_busy = False
        self.serving: Connection | None = None
        self.serving_since = 0.0  # when the request now running started; 0 = none runs
        if self.channel is not None:
            threading.Thread(target=self._watch, name="handoff-watcher", daemon=True).start()
        try:
            self.event_loop(poller)
        finally:
            self.alive = False
            for conn in self.connections.values():
                conn.close()
            poller.close()

    def adopt(self, conn: Connection) -> None:
        """Serve what the new connection already sent, then park it in the loop if it stays open."""
        if self.serve_connection(conn):
            self.connections[conn.fd] = conn
            self.poller.watch(conn.fd)
        else:
            conn.close()

    def readable(self, conn: Connection) -> None:
        if not (conn.recv_nowait() and self.serve_connection(conn)):
            self.forget(conn)

    def run_request(self, conn: Connection, head: RequestHead, entry: sb.Entry) -> bool:
        started = monotonic()
        entry.started(started, (head.method + " " + head.target).encode("latin-1"))
        self.serving = conn
        self.serving_since = started
        try:
            keep = self.handler.handle(conn, head)
        finally:
            self.serving_since = 0.0
            while self.watcher_busy:  # rare: it is moving parked connections right now
                sleep(0.0002)
            entry.finished()
        return keep

    # -- the hand-off watcher thread ------------------------------------------------------------

    def _watch(self) -> None:
        delay = self.settings.handoff_delay
        tick = min(delay / 2, 0.05)
        while self.alive:
            sleep(tick)
            evacuate = self.board.asked(self.index) == sb.EVACUATE
            since = self.serving_since
            if not since or (monotonic() - since < delay and not evacuate):
                continue
            self.watcher_busy = True
            try:
                if self.serving_since == since:  # still inside the same request: its connections are ours
                    self._hand_off_waiting(evacuate)
            finally:
                self.watcher_busy = False

    def _hand_off_waiting(self, evacuate: bool) -> None:
        """Runs in the watcher, with ``watcher_busy`` up, while the main thread runs a request."""
        now = monotonic()
        if evacuate:
            self.evacuate(now, keep=self.serving)
            return
        parked = [conn for conn in self.connections.values() if conn is not self.serving]
        if not parked or not self.sibling_free():
            return
        probe = select.poll()
        for conn in parked:
            probe.register(conn.fd, select.POLLIN)
        ready = {fd for fd, _ in probe.poll(0)}
        for conn in parked:
            if conn.fd in ready or conn.head_since:
                self.hand_off(conn, now)
