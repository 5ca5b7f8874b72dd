"""What every part of the master shares: its state and the methods the parts call on one another.

The master is one object (``arbiter.Arbiter``) assembled from parts that each do one job:
``arbiter`` (start-up, the main loop, signals), ``children`` (carrying out the pool's actions:
fork, signal, reap, stop) and ``upgrade`` (re-execution: USR2 and HUP with --preload). Each part
inherits this class, so that each knows the state and the methods the others define.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any

from . import scoreboard as sb
from .control import ControlServer
from .handoff import Channel
from .hooks import call_hook
from .pool import Pool
from .sockets import Listener
from .stats import SIZE as STATS_SIZE
from .systemd import Notifier


class MasterState:
    # Defined by one part, called by others:
    _sleep: Callable[[], None]  # arbiter: wait for a signal, a child or the control socket
    _stop_listening: Callable[[], None]  # arbiter
    _reap: Callable[[], None]  # children

    def __init__(self, settings: Any, log: logging.Logger, argv: list[str] | None = None, statsd: Any = None) -> None:
        self.settings = settings
        self.argv = argv  # re-read on HUP, with the environment and the config file
        self.log = log
        self.name = settings.proc_name or settings.app_uri
        self.listeners: list[Listener] = []
        self.signals: deque[int] = deque()
        self.notifier = Notifier()
        stats_size = STATS_SIZE if settings.metrics_bind else 0
        board = sb.Scoreboard(max(64, settings.workers * 4), settings.threads, stats_size)
        self.pool = Pool(settings.workers, settings.timeout, board, log, settings.app_uri)
        self.uid: int | None = None  # --user / --group, resolved at start
        self.gid: int | None = None
        self.announce_main_pid = False  # a new master after USR2 tells systemd it is the service now
        self.exit_code: int | None = None  # set when the master decides to stop
        self.graceful = True
        self.stop_at = 0.0  # end of --shutdown-delay
        self.upgrade_child = 0  # pid of the new master started by USR2
        self.app: Any = None  # the preloaded application (--preload)
        self.channel: Channel | None = None  # the workers' hand-off channel, kept for our lifetime
        self.statsd = statsd  # gunicorn's statsd metrics (--statsd-host), or None
        self.control: ControlServer | None = None  # --metrics-bind
        self.control_listener: Listener | None = None
        self.reported_workers = -1
        self.wake_r = self.wake_w = -1  # the pipe signals wake the loop through, made at start

    # gunicorn's names, for server hooks written for gunicorn
    @property
    def cfg(self) -> Any:
        return self.settings

    @property
    def pid(self) -> int:
        return os.getpid()

    def hook(self, name: str, *args: Any) -> None:
        call_hook(self.settings, self.log, name, self, *args)
