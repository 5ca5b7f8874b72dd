"""prometheus_client's multiprocess mode, without the application's help.

When ``PROMETHEUS_MULTIPROC_DIR`` is set, the master empties that directory at start (stale files of
an earlier run would be summed into today's metrics) and, when a worker exits, marks it dead with
``prometheus_client.multiprocess.mark_process_dead`` (its live gauges are dropped), which gunicorn
users otherwise do in a ``child_exit`` hook. prometheus_client is imported only then.
"""

from __future__ import annotations

import glob
import os

PROMETHEUS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def clear_prometheus_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    for name in glob.glob(os.path.join(path, "*.db")):
        try:
            os.unlink(name)
        except OSError:
            pass


def mark_process_dead(pid: int) -> None:
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    multiprocess.mark_process_dead(pid)
