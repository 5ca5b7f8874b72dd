"""The sync worker: one request executes at a time, yet idle and slow connections never hold it.

One epoll loop owns every connection of the worker. Connections waiting for (the rest of) a request
head are parked in the loop; a request runs only once its head is complete, then its connection goes
back to the loop if it is kept alive. Listening sockets are registered with EPOLLEXCLUSIVE so an
incoming connection wakes one worker, not all of them (no thundering herd).

Everything here runs in the worker's only thread.
"""

from __future__ import annotations

import os
import select
import signal
from time import monotonic

from ..conn import Connection
from ..sockets import Listener
from .base import HOUSEKEEPING_INTERVAL, Worker

_LISTEN_EVENTS = select.EPOLLIN | select.EPOLLEXCLUSIVE


class SyncWorker(Worker):
    def run_loop(self) -> None:
        epoll = select.epoll()
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)  # a signal ends epoll.poll() at once
        epoll.register(wake_r, select.EPOLLIN)
        listeners = {lst.sock.fileno(): lst for lst in self.listeners}
        for fd in listeners:
            epoll.register(fd, _LISTEN_EVENTS)
        accepting = True
        connections: dict[int, Connection] = {}
        max_connections = self.settings.worker_connections
        poll = epoll.poll
        serve = self.serve_connection
        try:
            while self.alive:
                events = poll(HOUSEKEEPING_INTERVAL)
                now = monotonic()
                for fd, _ in events:
                    conn = connections.get(fd)
                    if conn is not None:
                        if not (conn.recv_nowait() and serve(conn)):
                            del connections[fd]
                            conn.close()
                    elif fd in listeners:
                        conn = self.accept(listeners[fd], now)
                        if conn is not None:
                            connections[conn.fd] = conn
                            epoll.register(conn.fd, select.EPOLLIN)
                    else:
                        _drain(wake_r)
                if now >= self.next_housekeeping:
                    self.housekeeping(now, connections)
                if accepting != (len(connections) < max_connections and self.alive):
                    accepting = not accepting
                    for fd in listeners:
                        if accepting:
                            epoll.register(fd, _LISTEN_EVENTS)
                        else:
                            epoll.unregister(fd)
        finally:
            signal.set_wakeup_fd(-1)
            for conn in connections.values():
                conn.close()
            epoll.close()
            os.close(wake_r)
            os.close(wake_w)

    def accept(self, listener: Listener, now: float) -> Connection | None:
        """Accept one connection and serve what it already sent; the connection if it stays open."""
        try:
            sock, peer = listener.sock.accept()
        except (BlockingIOError, InterruptedError):
            return None  # another worker took it
        except OSError as exc:  # EMFILE and friends: keep serving the connections we have
            self.log.error("accept() failed on %s: %s", listener.address, exc)
            return None
        listener.tune_accepted(sock)
        conn = Connection(sock, self.handler.connection_environ(peer, listener.server_address), now)
        if conn.recv_nowait() and self.serve_connection(conn):
            return conn
        conn.close()
        return None


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
