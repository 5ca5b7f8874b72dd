"""The sync worker: one request executes at a time, yet idle and slow connections never hold it.

One epoll loop owns every connection of the worker. Connections waiting for (the rest of) a request
head are parked in the loop; a request runs only once its head is complete, then its connection goes
back to the loop if it is kept alive.

Everything here runs in the worker's only thread.
"""

from __future__ import annotations

import select

from ..conn import Connection
from .base import Worker
from .poller import Poller


class SyncWorker(Worker):
    def run_loop(self) -> None:
        poller = Poller(self.listeners)
        try:
            self.event_loop(poller)
        finally:
            for conn in self.connections.values():
                conn.close()
            poller.close()

    def adopt(self, conn: Connection) -> None:
        """Serve what the new connection already sent, then park it in the loop if it stays open."""
        if self.serve_connection(conn):
            self.connections[conn.fd] = conn
            self.poller.epoll.register(conn.fd, select.EPOLLIN)
        else:
            conn.close()

    def readable(self, conn: Connection) -> None:
        if not (conn.recv_nowait() and self.serve_connection(conn)):
            del self.connections[conn.fd]
            conn.close()
