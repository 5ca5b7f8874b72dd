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
        poller = Poller(self.listeners)
        connections: dict[int, Connection] = {}
        max_connections = self.settings.worker_connections
        serve = self.serve_connection
        try:
            while self.alive:
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
                        if conn is None:
                            continue
                        if serve(conn):  # it often sent its request with the connection
                            connections[conn.fd] = conn
                            poller.epoll.register(conn.fd, select.EPOLLIN)
                        else:
                            conn.close()
                    else:
                        poller.is_wake(fd)
                if now >= self.next_housekeeping:
                    self.housekeeping(now, connections)
                poller.set_accepting(len(connections) < max_connections and self.alive)
        finally:
            for conn in connections.values():
                conn.close()
            poller.close()
