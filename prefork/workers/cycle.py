"""The request cycle, shared by every worker class: the next complete head of a connection, the
request run through the WSGI handler, the loop over pipelined requests, and refusals.

Mixed into ``Worker`` (base.py); runs in the thread that owns the connection (the event loop, or a
request thread of the threaded worker). ``serve_connection`` is the one request cycle.
"""

from __future__ import annotations

from time import monotonic

from .. import scoreboard as sb
from ..conn import Connection
from ..http.errors import HeaderFieldsTooLarge, HTTPError
from ..http.parser import RequestHead
from ..http.response import server_headers
from ..process import release_free_memory
from .state import WorkerState

# Incomplete request heads larger than BIG_HEAD are tracked; together they may hold HEAD_MEMORY_BUDGET
# bytes per worker, beyond which the largest get 431. Without it, a thousand clients each stopping
# just short of the head limits (about 0.8 MiB with the defaults) would hold 800 MB of one worker.
BIG_HEAD = 65536
HEAD_MEMORY_BUDGET = 32 << 20


class RequestCycle(WorkerState):
    """Requests of one connection, from its buffered bytes to the responses."""

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

    def serve_connection(
        self, conn: Connection, head: RequestHead | None = None, entry: sb.Entry | None = None
    ) -> bool:
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

    def run_request(self, conn: Connection, head: RequestHead, entry: sb.Entry) -> bool:
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
