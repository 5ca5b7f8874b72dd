"""What every part of a worker shares: its state, set up in the master just before the fork, and the
methods the parts call on one another.

A worker is one object assembled from parts that each do one job: ``loop.EventLoop`` (accept, read,
time out, drain), ``cycle.RequestCycle`` (the request cycle), ``sharing.PoolMember`` (balance and
hand-off) and ``base.Worker`` (life as a process); ``sync`` and ``threaded`` say how requests run.
Each part inherits this class, so that each knows the state and the methods the others define.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from .. import scoreboard as sb
from ..conn import Connection
from ..handoff import Channel
from ..http.errors import HTTPError
from ..http.parser import Limits
from ..pool import jittered_max_requests
from ..proxy import ProxyPolicy
from ..sockets import Listener
from ..stats import RequestStats
from ..wsgi import WSGIHandler
from .poller import Poller

HOUSEKEEPING_INTERVAL = 0.5  # seconds between the event loop's housekeeping passes


class WorkerState:
    multithread = False
    handler: WSGIHandler  # built after the fork, once the application is loaded (main)
    waiting: Any = ()  # complete heads waiting for a request thread (threaded worker)
    loop_holder = 0  # the thread running the event loop (threaded worker: it moves; 0 = the only one)
    ready: Any = ()  # complete heads the loop holder serves once it has read its batch (threaded worker)

    poller: Poller  # built by run_loop, in the child
    # Defined by one part, called by others:
    describe: Callable[[float], str]  # base: the process title's state
    handoff_summary: Callable[[], str]  # base: ", handed off N, taken over M" for the title
    publish_stats: Callable[..., None]  # base
    hook: Callable[..., None]  # base: a server hook
    _set_title: Callable[[str], None]  # base
    _on_term: Callable[[int, Any], None]  # base: the graceful stop
    _progress: Callable[[], None]  # base: heartbeat before a blocking client call
    forget: Callable[[Connection], None]  # loop: close a connection
    serve_ready: Callable[[], None]  # threaded: run or dispatch the heads in ``ready``
    reject: Callable[[Connection, HTTPError], None]  # cycle: refuse a request
    _forget_finished_heads: Callable[[], None]  # cycle
    update_gates: Callable[[float], None]  # sharing
    take_over: Callable[[float], Connection | None]  # sharing
    reclaim: Callable[[], None]  # sharing
    rebalance: Callable[[float], None]  # sharing
    evacuate: Callable[..., None]  # sharing

    def __init__(
        self,
        index: int,
        settings: Any,
        listeners: list[Listener],
        board: sb.Scoreboard,
        log: logging.Logger,
        server_software: str,
        channel: Channel | None = None,
        statsd: Any = None,
    ) -> None:
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
        self.entry = board.entry(index, 0)  # where the main thread announces its requests
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
