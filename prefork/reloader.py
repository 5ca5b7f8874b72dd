"""--reload (development): a worker thread that notices a changed source file and asks for a reload.

Each worker watches the files of every module it has loaded (the application's and its libraries')
plus ``--reload-extra-file``s, by polling their modification times once a second (gunicorn's
``inotify`` engine is accepted and polls too: a few hundred stat calls a second cost well under 1% of
a core). On the first change it logs the file and sends HUP to the master, which starts a new
generation with the new code and retires the old one gracefully; the thread then ends.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable

POLL_INTERVAL = 1.0


def watched_files(extra: Iterable[str]) -> set[str]:
    files = {getattr(module, "__file__", None) for module in list(sys.modules.values())}
    return {path for path in files if path} | set(extra)


def start_reloader(extra: Iterable[str], on_change: Callable[[str], None]) -> threading.Thread:
    extra = list(extra)

    def watch() -> None:
        seen: dict[str, float] = {}
        while True:
            for path in watched_files(extra):
                try:
                    mtime = os.stat(path).st_mtime
                except OSError:
                    continue
                if seen.setdefault(path, mtime) != mtime:
                    on_change(path)
                    return
            time.sleep(POLL_INTERVAL)

    thread = threading.Thread(target=watch, name="reloader", daemon=True)
    thread.start()
    return thread
