"""Calling the server hooks of the config file (gunicorn's names and signatures).

Used by the master and by the workers. A hook that raises is logged with its traceback and ignored:
a bug in a hook never takes the server down.
"""

from __future__ import annotations

import logging
from typing import Any


def call_hook(settings: Any, log: logging.Logger, name: str, *args: Any) -> None:
    hook = getattr(settings, name, None)
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:
        log.exception("Hook %s raised; carrying on", name)
