"""Request statistics with --metrics-bind: counted by each worker, published in its scoreboard slot,
summed by the master.

On the hot path a request only appends one tuple to a list (no lock, no system call, nothing when
metrics are off); the worker's event loop counts them into a ``RequestStats`` and copies it into its
slot's statistics block at each housekeeping (twice a second). The master reads every slot's block
(``Totals.unpack``) and, when a worker exits, folds its last published counts into the totals it
keeps, so counters only grow across deaths, recycling and HUP.

The block: requests by (method, status code), a duration histogram (Prometheus' default buckets),
its sum, request and response body bytes, and the worker's idle keep-alive connections.
"""

from __future__ import annotations

import bisect
import struct
from collections import Counter
from operator import itemgetter
from typing import Any

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other")
_METHOD_INDEX = {name: index for index, name in enumerate(METHODS)}
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)  # + Inf
CODES = range(100, 600)
_METHOD_AND_CODE, _DURATION, _BYTES_IN, _BYTES_OUT = itemgetter(0, 1), itemgetter(2), itemgetter(3), itemgetter(4)
_CELLS = len(METHODS) * len(CODES)
# requests by method x code, histogram buckets (+Inf last), duration sum, bytes in, bytes out, idle
_LAYOUT = struct.Struct(f"<{_CELLS}Q{len(BUCKETS) + 1}QdQQI")
SIZE = _LAYOUT.size


class RequestStats:
    """One worker's counts since it started (kept by its event loop)."""

    __slots__ = ("requests", "buckets", "duration_sum", "bytes_in", "bytes_out", "idle")

    def __init__(self) -> None:
        self.requests: dict[int, int] = {}  # method index * 500 + code - 100 -> count
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.idle = 0

    def observe_batch(self, batch: list[tuple[str, int, float, int, int]]) -> None:
        """Count requests given as (method, status, seconds, body bytes in, out), in C where it can
        (sorting, Counter, sum): about half a microsecond a request, off the request path. Status 0 (the
        client left before one was sent) counts as nginx's 499."""
        if not batch:
            return
        requests = self.requests
        for (method, code), count in Counter(map(_METHOD_AND_CODE, batch)).items():
            if not 100 <= code < 600:
                code = 599 if code else 499
            cell = _METHOD_INDEX.get(method, 7) * 500 + code - 100
            requests[cell] = requests.get(cell, 0) + count
        durations = sorted(map(_DURATION, batch))
        below = 0
        for index, bound in enumerate(BUCKETS):
            upto = bisect.bisect_left(durations, bound)
            self.buckets[index] += upto - below
            below = upto
        self.buckets[-1] += len(durations) - below
        self.duration_sum += sum(durations)
        self.bytes_in += sum(map(_BYTES_IN, batch))
        self.bytes_out += sum(map(_BYTES_OUT, batch))

    def pack(self) -> bytes:
        cells = [0] * _CELLS
        for cell, count in self.requests.items():
            cells[cell] = count
        return _LAYOUT.pack(*cells, *self.buckets, self.duration_sum, self.bytes_in, self.bytes_out, self.idle)


class Totals:
    """Counts as the master reads them: one worker's block, or the sum of several."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.idle = 0

    @classmethod
    def unpack(cls, data: Any) -> Totals:
        values = _LAYOUT.unpack(data)
        totals = cls()
        for cell in range(_CELLS):
            if values[cell]:
                totals.requests[(METHODS[cell // 500], 100 + cell % 500)] = values[cell]
        buckets_end = _CELLS + len(BUCKETS) + 1
        totals.buckets = list(values[_CELLS:buckets_end])
        totals.duration_sum, totals.bytes_in, totals.bytes_out, totals.idle = values[buckets_end:]
        return totals

    def add(self, other: Totals, gauges: bool = True) -> None:
        for key, count in other.requests.items():
            self.requests[key] = self.requests.get(key, 0) + count
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.duration_sum += other.duration_sum
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        if gauges:
            self.idle += other.idle

    @property
    def count(self) -> int:
        return sum(self.buckets)
