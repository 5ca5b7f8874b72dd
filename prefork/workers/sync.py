"""The sync worker: one request executes at a time, yet idle and slow connections never hold it.

One epoll loop owns every connection of the worker. Connections waiting for (the rest of) a request
head are parked in the loop; a request runs only once its head is complete, then its connection goes
back to the loop if it is kept alive.

Everything here runs in the worker's only thread.
"""

from __future__ import annotations

import select
from time import monotonic

from ..conn import Connection
from .base import HOUSEKEEPING_INTERVAL, Worker
from .poller import Poller


class SyncWorker(Worker):
    def run_loop(self) -> None:
        poller = self.poller = Poller(self.listeners)
        connections = self.connections
        max_connections = self.settings.worker_connections
        serve = self.serve_connection
        draining = False
        try:
            while self.running():
                if not (self.alive or draining):
                    draining = True
                    self.start_drain(poller, self._adopt)
                    continue
                events = poller.poll(HOUSEKEEPING_INTERVAL)
                now = monotonic()
                for fd, _ in events:
                    conn = connections.get(fd)
                    if conn is not None:
                        if not (conn.recv_nowait() and serve(conn)):
                            del connections[fd]
                            conn.close()
                    elif fd in poller.listeners:
                        conn = self.accept(poller.listeners[fd], now)
                        if conn is not None:
                            self._adopt(conn)
                    else:
                        poller.is_wake(fd)
                if now >= self.next_housekeeping:
                    self.housekeeping(now, connections)
                if self.alive:
                    poller.set_accepting(len(connections) < max_connections)
        finally:
            for conn in connections.values():
                conn.close()
            poller.close()

    def _adopt(self, conn: Connection) -> None:
        """A new connection: serve what it already sent, then park it in the loop if it stays open."""
        if self.serve_connection(conn):
            self.connections[conn.fd] = conn
            self.poller.epoll.register(conn.fd, select.EPOLLIN)
        else:
            conn.close()
