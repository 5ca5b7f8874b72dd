"""Worker health in shared memory: one slot per worker, written by that worker, read by the master.

Created by the master before forking (an anonymous shared mmap, inherited across fork), so a
heartbeat is a memory write, never a file on disk. A slot holds the worker's state, its last
heartbeat (CLOCK_MONOTONIC, the same clock in every process), its request count, a message (the
reason of a boot failure or of a voluntary exit, which the master reports), and one entry per request
thread: when its current request started (0 = idle) and its request line, so that the master can say
what a silent worker was doing.

For the pool's balance (see docs/design.md) a slot also holds the worker's open connections (written
only when the count changes), how many connections it handed off to and took from its siblings, and
one byte the master writes: EVACUATE, "hand your parked connections to a sibling", set just before a
silent worker is killed so that its idle keep-alive clients are not reset with it.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

# RECYCLE: the worker reached --max-requests and asks the master for a replacement; it keeps serving
# until the replacement is ready and the master retires it.
BOOTING, READY, DRAINING, BOOT_FAILED, RECYCLE = 1, 2, 3, 4, 5

# heartbeat, state, requests, message length, connections, handed off, taken over, master's request
_HEADER = struct.Struct("<dBQIIIIB")
_MESSAGE_SIZE = 4096
_FIXED_PART = _HEADER.size + _MESSAGE_SIZE
_BEAT = struct.Struct("<d")
_STATE_OFFSET = 8
_REQUESTS = struct.Struct("<Q")
_REQUESTS_OFFSET = 9
_U32 = struct.Struct("<I")
_CONNECTIONS_OFFSET = 21
_HANDED_OFF_OFFSET = 25
_TAKEN_OVER_OFFSET = 29
_REQUEST_OFFSET = 33
EVACUATE = 1  # the master's request byte: hand every parked connection to a sibling
_THREAD = struct.Struct("<d119p")  # request start (0 = idle), request line (Pascal string)
_IDLE = struct.Struct("<d")


class Entry(NamedTuple):
    """Where one request thread announces its request: ``started(now, request line)`` and
    ``finished()``. Both are partials of ``struct.pack_into`` bound to the thread's place, so the hot
    path makes no Python-level call for them."""

    started: Callable[[float, bytes], None]
    finished: Callable[[], None]


class Scoreboard:
    def __init__(self, capacity: int, threads: int = 1, stats_size: int = 0) -> None:
        """``stats_size``: bytes of each slot's request-statistics block (stats.py; 0 = no metrics)."""
        self.capacity = capacity
        self.threads = threads
        self.stats_size = stats_size
        self.slot_size = _FIXED_PART + threads * _THREAD.size + stats_size
        self._mem = mmap.mmap(-1, capacity * self.slot_size)

    def entry(self, index: int, thread: int) -> Entry:
        """Where request thread ``thread`` of worker ``index`` announces its request."""
        offset = index * self.slot_size + _FIXED_PART + thread * _THREAD.size
        return Entry(partial(_THREAD.pack_into, self._mem, offset), partial(_IDLE.pack_into, self._mem, offset, 0.0))

    def stats_block(self, index: int) -> memoryview:
        """Slot ``index``'s request-statistics block: written by its worker, read by the master."""
        end = (index + 1) * self.slot_size
        return memoryview(self._mem)[end - self.stats_size : end]

    def running(self, index: int) -> list[tuple[float, str]]:
        """``(start, request line)`` of every request the worker is running."""
        base = index * self.slot_size + _FIXED_PART
        entries = (_THREAD.unpack_from(self._mem, base + i * _THREAD.size) for i in range(self.threads))
        return [(start, line.decode("latin-1")) for start, line in entries if start]

    def reset(self, index: int, now: float) -> None:
        """Prepare slot ``index`` for a new worker (called by the master before the fork)."""
        offset = index * self.slot_size
        self._mem[offset : offset + self.slot_size] = bytes(self.slot_size)
        _HEADER.pack_into(self._mem, offset, now, BOOTING, 0, 0, 0, 0, 0, 0)

    def release(self, index: int) -> None:
        """The worker of slot ``index`` is gone: its slot no longer counts as a sibling."""
        self._mem[index * self.slot_size + _STATE_OFFSET] = 0

    def beat(self, index: int, now: float) -> None:
        _BEAT.pack_into(self._mem, index * self.slot_size, now)

    def set_state(self, index: int, state: int) -> None:
        self._mem[index * self.slot_size + _STATE_OFFSET] = state

    def count_request(self, index: int, total: int) -> None:
        _REQUESTS.pack_into(self._mem, index * self.slot_size + _REQUESTS_OFFSET, total)

    def set_connections(self, index: int, count: int) -> None:
        _U32.pack_into(self._mem, index * self.slot_size + _CONNECTIONS_OFFSET, count)

    def connections(self, index: int) -> int:
        return _U32.unpack_from(self._mem, index * self.slot_size + _CONNECTIONS_OFFSET)[0]

    def count_handoffs(self, index: int, handed_off: int, taken_over: int) -> None:
        offset = index * self.slot_size
        _U32.pack_into(self._mem, offset + _HANDED_OFF_OFFSET, handed_off)
        _U32.pack_into(self._mem, offset + _TAKEN_OVER_OFFSET, taken_over)

    def handoffs(self, index: int) -> tuple[int, int]:
        """``(handed off, taken over)`` connections of a slot."""
        offset = index * self.slot_size
        return (
            _U32.unpack_from(self._mem, offset + _HANDED_OFF_OFFSET)[0],
            _U32.unpack_from(self._mem, offset + _TAKEN_OVER_OFFSET)[0],
        )

    def ask(self, index: int, request: int) -> None:
        """The master asks the worker of slot ``index`` for something (EVACUATE)."""
        self._mem[index * self.slot_size + _REQUEST_OFFSET] = request

    def asked(self, index: int) -> int:
        return self._mem[index * self.slot_size + _REQUEST_OFFSET]

    def set_message(self, index: int, text: str) -> None:
        data = text.encode("utf-8", "replace")[:_MESSAGE_SIZE]
        offset = index * self.slot_size
        self._mem[offset + _HEADER.size : offset + _HEADER.size + len(data)] = data
        _U32.pack_into(self._mem, offset + _REQUESTS_OFFSET + 8, len(data))

    def read(self, index: int) -> tuple[float, int, int]:
        """``(heartbeat, state, requests)`` of a slot."""
        heartbeat, state, requests = _HEADER.unpack_from(self._mem, index * self.slot_size)[:3]
        return heartbeat, state, requests

    def sibling_loads(self, me: int) -> list[int]:
        """Open connections of every other worker that can take one now: READY (or RECYCLE, still
        serving) and with a free request thread. Read by a worker deciding whether to accept."""
        loads = []
        mem = self._mem
        size = self.slot_size
        for index in range(self.capacity):
            offset = index * size
            if index == me or mem[offset + _STATE_OFFSET] not in (READY, RECYCLE):
                continue
            base = offset + _FIXED_PART
            if all(_IDLE.unpack_from(mem, base + i * _THREAD.size)[0] for i in range(self.threads)):
                continue  # every request thread busy (a sync worker inside the application)
            loads.append(_U32.unpack_from(mem, offset + _CONNECTIONS_OFFSET)[0])
        return loads

    def message(self, index: int) -> str:
        offset = index * self.slot_size
        length = _U32.unpack_from(self._mem, offset + _REQUESTS_OFFSET + 8)[0]
        return self._mem[offset + _HEADER.size : offset + _HEADER.size + length].decode("utf-8", "replace")
