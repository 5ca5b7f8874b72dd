"""Request IDs: the client's or proxy's ``X-Request-ID`` when it is sane, else one we make.

Each worker builds one ``RequestIds`` after the fork (random per-worker prefix, then a counter: unique
without a syscall per request). The ID of the request a thread is running sits in ``CURRENT`` (a
ContextVar, so per thread) for the error log's records; the application finds it in
``environ["prefork.request_id"]``.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import re

CURRENT: contextvars.ContextVar[str] = contextvars.ContextVar("prefork_request_id", default="")
_SANE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,200}")  # nothing that could break a log line


class RequestIds:
    def __init__(self) -> None:
        self.prefix = os.urandom(6).hex()
        # "<prefix>-1", "<prefix>-2", ... formatted in C, one per call
        self.next_id = map(f"{self.prefix}-{{:x}}".format, itertools.count(1)).__next__

    def pick(self, environ: dict) -> str:
        given = environ.get("HTTP_X_REQUEST_ID")
        if given is not None and _SANE.fullmatch(given):
            return given
        return self.next_id()
