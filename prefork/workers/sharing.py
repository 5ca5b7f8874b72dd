"""The worker's part in the pool's balance: which sources it watches, and connections it gives and takes.

Mixed into ``Worker`` (base.py), whose event loop calls ``update_gates`` when its number of
connections changes or every BALANCE_INTERVAL, ``hand_off``/``take_over`` move connections through
the hand-off channel, and housekeeping calls ``rebalance`` and, when the master asks, ``evacuate``.
The rules themselves are pure functions in ``prefork/balance.py``; docs/design.md explains them.

Runs in the worker's event-loop thread, except ``hand_off`` and ``evacuate`` which the sync worker's
hand-off watcher also calls while it owns the connections (see sync.py).
"""

from __future__ import annotations

from ..balance import ACCEPT_SLACK, BALANCE_INTERVAL, reclaim_candidate, should_accept, surplus
from ..conn import Connection
from ..handoff import ADDRESS_KEYS, Parcel
from .state import HOUSEKEEPING_INTERVAL, WorkerState

TAKE_PAUSE = 0.1  # seconds a worker that handed connections off leaves them to its siblings


class PoolMember(WorkerState):
    """Balance and hand-off."""

    def update_gates(self, now: float) -> None:
        """Decide whether to watch the listeners and the hand-off channel. Runs when the number of
        connections changed or BALANCE_INTERVAL passed, not at every turn of a busy loop."""
        self.gates_count = len(self.connections)
        self.gates_due = now + BALANCE_INTERVAL
        if self.evacuating:
            return
        poller = self.poller
        poller.set_accepting(self.can_accept(now))
        poller.set_taking(self.can_take(now))
        # A worker held back looks at its siblings again soon: one of them may have become busy,
        # and new connections must not wait for it.
        held_back = not poller.accepting or (self.channel is not None and not poller.taking)
        self.poll_wait = BALANCE_INTERVAL if held_back else HOUSEKEEPING_INTERVAL

    def can_take(self, now: float) -> bool:
        """Whether to watch the hand-off channel: connections there have a request waiting, so
        only a worker that can run one now takes them (whatever its number of connections); and
        not just after it gave some away, or it would take its own back before a sibling woke."""
        return now >= self.take_paused_until

    def can_accept(self, now: float) -> bool:
        """Whether to watch the listeners and the hand-off channel; publishes the connection count."""
        count = len(self.connections)
        if count != self.published_connections:
            self.published_connections = count
            self.board.set_connections(self.index, count)
        if now < self.accept_paused_until:
            return False
        if count >= self.settings.worker_connections and reclaim_candidate(self.connections.values()) is None:
            return False
        last_count, last_time, verdict = self.balance
        if count != last_count or now - last_time >= BALANCE_INTERVAL:
            # the board is read only when it can change the verdict (a worker with a connection or
            # none accepts whatever its siblings hold): not once per connection of close traffic
            verdict = count <= ACCEPT_SLACK or should_accept(count, self.board.sibling_loads(self.index))
            self.balance = (count, now, verdict)
        return verdict

    def reclaim(self) -> None:
        """At --worker-connections: close the keep-alive connection idle the longest (between
        requests, with nothing pending), as gunicorn's gthread worker does, to make room."""
        conn = reclaim_candidate(self.connections.values())
        if conn is not None:
            self.log.debug("At %d connections: closing the longest-idle one", len(self.connections))
            self.forget(conn)

    def hand_off(self, conn: Connection, now: float) -> bool:
        """Give ``conn`` (owned by the caller, not running a request) to the first free sibling."""
        channel = self.channel
        if channel is None or not conn.handoff_allowed or not self.alive:
            return False
        addresses = {key: conn.environ.get(key, "") for key in ADDRESS_KEYS}
        parcel = Parcel(
            bytes(conn.buf),
            conn.requests,
            conn.trusted,
            conn.proxy_header_pending,
            addresses,
            now - conn.head_since if conn.head_since else -1.0,
        )
        if not channel.send(conn.sock, parcel):
            return False
        self.take_paused_until = now + TAKE_PAUSE
        self.poller.set_taking(False)
        self.connections.pop(conn.fd, None)
        self.poller.forget(conn.fd)
        conn.detach()
        self.handed_off += 1
        self.board.count_handoffs(self.index, self.handed_off, self.taken_over)
        return True

    def sibling_free(self) -> bool:
        """Whether some sibling can run a request now: a connection waiting here goes to the channel
        only then; alone (``-w 1``), or with every sibling busy, it would come back to this worker
        from the channel later, behind the others (evacuation hands off regardless: the replacement
        takes them)."""
        return bool(self.board.sibling_loads(self.index))

    def take_over(self, now: float) -> Connection | None:
        """A connection a sibling handed off, with the bytes it had read; None if another was faster."""
        received = self.channel.receive() if self.channel is not None else None
        if received is None:
            return None
        sock, parcel = received
        environ = dict(self.handler.base)
        environ.update(parcel.addresses)
        environ["gunicorn.socket"] = environ["prefork.socket"] = sock
        conn = Connection(sock, environ, now)
        if parcel.buf:
            conn.append(parcel.buf)
        conn.requests = parcel.requests
        conn.trusted = parcel.trusted
        conn.proxy_header_pending = parcel.proxy_header_pending
        if parcel.head_age >= 0:
            conn.head_since = now - parcel.head_age
        self.taken_over += 1
        self.board.count_handoffs(self.index, self.handed_off, self.taken_over)
        if conn.recv_nowait() or conn.buf:
            return conn
        conn.close()
        return None

    def rebalance(self, now: float) -> None:
        """Give idle kept-alive connections to siblings while this worker is well ahead of them."""
        excess = surplus(len(self.connections), self.board.sibling_loads(self.index))
        if not excess:
            return
        idle = [
            conn
            for conn in self.connections.values()
            if not (conn.busy or conn.head_since or conn.buf) and conn.requests
        ]
        for conn in idle[:excess]:
            self.hand_off(conn, now)

    def evacuate(self, now: float, keep: Connection | None = None) -> None:
        """The master is about to kill this worker: hand every parked connection to a sibling."""
        self.evacuating = True
        self.poller.set_accepting(False)
        self.poller.set_taking(False)
        for conn in list(self.connections.values()):
            if conn is not keep and not conn.busy:
                self.hand_off(conn, now)
