"""Re-executing the master with the listening sockets: USR2 (a new master beside this one, gunicorn's
binary upgrade) and HUP with --preload (the master replaces itself in place to load new code).

Mixed into ``arbiter.Arbiter``. The sockets pass in PREFORK_FDS; after a re-exec for --preload, the
new image drains the workers it inherited (PREFORK_OLD_WORKERS) once its own are ready.
"""

from __future__ import annotations

import os
import signal
import sys

from .master_state import MasterState
from .signal_table import HANDLED_SIGNALS

INHERITED_FDS_ENV = "PREFORK_FDS"  # listening fds handed to a new master by USR2 or a preload reload
ADOPTED_WORKERS_ENV = "PREFORK_OLD_WORKERS"  # workers a re-executed master must drain once it is ready


class Upgrade(MasterState):
    def handle_usr2(self) -> None:
        if self.upgrade_child:
            self.log.warning("USR2 ignored: an upgraded master (pid %d) is already running", self.upgrade_child)
            return
        if self.settings.pidfile and os.path.exists(self.settings.pidfile):
            # Before the fork: the new master may write its pidfile before this process runs again.
            os.replace(self.settings.pidfile, self.settings.pidfile + ".oldbin")
        self.upgrade_child = self._exec_new_master()
        for listener in self.listeners:
            listener.owned = False  # the new master removes unix socket files when it stops

    def _exec_new_master(self) -> int:
        """USR2: fork and exec this same command line, handing over the listening sockets."""
        env = self._exec_environment(adopt_workers=False)
        pid = os.fork()
        if pid:
            self.log.info("Started new master (pid %d) with listening fds %s", pid, env[INHERITED_FDS_ENV])
            return pid
        try:
            self._exec(env)
        finally:
            os._exit(1)

    def _reexec_for_preload(self) -> None:
        """HUP with --preload: exec a fresh master in place (same PID) that loads the new code."""
        env = self._exec_environment(adopt_workers=True)
        self.notifier.reloading()
        self.log.info("Re-executing the master to load new code (--preload)")
        self._exec(env)

    def _exec_environment(self, adopt_workers: bool) -> dict[str, str]:
        self.hook("pre_exec")
        env = dict(os.environ)
        env[INHERITED_FDS_ENV] = ",".join(str(listener.sock.fileno()) for listener in self.listeners)
        if adopt_workers:
            env[ADOPTED_WORKERS_ENV] = ",".join(map(str, self.pool.workers))
        if self.notifier.address:
            env["NOTIFY_SOCKET"] = self.notifier.address
        return env

    def _exec(self, env: dict[str, str]) -> None:
        for listener in self.listeners:
            os.set_inheritable(listener.sock.fileno(), True)
        signal.set_wakeup_fd(-1)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        os.execve(sys.executable, sys.orig_argv, env)
