"""Worker health in shared memory: one slot per worker, written by that worker, read by the master.

Created by the master before forking (an anonymous shared mmap, inherited across fork), so a
heartbeat is a memory write, never a file on disk. A slot holds the worker's state, its last
heartbeat (CLOCK_MONOTONIC, the same clock in every process), its request count, a message (the
reason of a boot failure or of a voluntary exit, which the master reports), and one entry per request
thread: when its current request started (0 = idle) and its request line, so that the master can say
what a silent worker was doing.
"""

from __future__ import annotations

import mmap
import struct

# RECYCLE: the worker reached --max-requests and asks the master for a replacement; it keeps serving
# until the replacement is ready and the master retires it.
BOOTING, READY, DRAINING, BOOT_FAILED, RECYCLE = 1, 2, 3, 4, 5

_HEADER = struct.Struct("<dBQI")  # heartbeat, state, requests, message length
_MESSAGE_SIZE = 4096
_FIXED_PART = _HEADER.size + _MESSAGE_SIZE
_BEAT = struct.Struct("<d")
_STATE_OFFSET = 8
_REQUESTS = struct.Struct("<Q")
_REQUESTS_OFFSET = 9
_THREAD = struct.Struct("<d119p")  # request start (0 = idle), request line (Pascal string)
_IDLE = struct.Struct("<d")


# A worker announces each request with two stores into its own entry: on the hot path, module-level
# struct calls cost a fraction of a method call chain.
def request_started(entry: tuple[mmap.mmap, int], now: float, line: bytes) -> None:
    _THREAD.pack_into(entry[0], entry[1], now, line)


def request_finished(entry: tuple[mmap.mmap, int]) -> None:
    _IDLE.pack_into(entry[0], entry[1], 0.0)


class Scoreboard:
    def __init__(self, capacity: int, threads: int = 1) -> None:
        self.capacity = capacity
        self.threads = threads
        self.slot_size = _FIXED_PART + threads * _THREAD.size
        self._mem = mmap.mmap(-1, capacity * self.slot_size)

    def entry(self, index: int, thread: int) -> tuple[mmap.mmap, int]:
        """Where request thread ``thread`` of worker ``index`` announces its request (see below)."""
        return self._mem, index * self.slot_size + _FIXED_PART + thread * _THREAD.size

    def running(self, index: int) -> list[tuple[float, str]]:
        """``(start, request line)`` of every request the worker is running."""
        base = index * self.slot_size + _FIXED_PART
        entries = (_THREAD.unpack_from(self._mem, base + i * _THREAD.size) for i in range(self.threads))
        return [(start, line.decode("latin-1")) for start, line in entries if start]

    def reset(self, index: int, now: float) -> None:
        """Prepare slot ``index`` for a new worker (called by the master before the fork)."""
        offset = index * self.slot_size
        self._mem[offset:offset + self.slot_size] = bytes(self.slot_size)
        _HEADER.pack_into(self._mem, offset, now, BOOTING, 0, 0)

    def beat(self, index: int, now: float) -> None:
        _BEAT.pack_into(self._mem, index * self.slot_size, now)

    def set_state(self, index: int, state: int) -> None:
        self._mem[index * self.slot_size + _STATE_OFFSET] = state

    def count_request(self, index: int, total: int) -> None:
        _REQUESTS.pack_into(self._mem, index * self.slot_size + _REQUESTS_OFFSET, total)

    def set_message(self, index: int, text: str) -> None:
        data = text.encode("utf-8", "replace")[:_MESSAGE_SIZE]
        offset = index * self.slot_size
        self._mem[offset + _HEADER.size: offset + _HEADER.size + len(data)] = data
        heartbeat, state, requests, _ = _HEADER.unpack_from(self._mem, offset)
        _HEADER.pack_into(self._mem, offset, heartbeat, state, requests, len(data))

    def read(self, index: int) -> tuple[float, int, int]:
        """``(heartbeat, state, requests)`` of a slot."""
        heartbeat, state, requests, _ = _HEADER.unpack_from(self._mem, index * self.slot_size)
        return heartbeat, state, requests

    def message(self, index: int) -> str:
        offset = index * self.slot_size
        length = _HEADER.unpack_from(self._mem, offset)[3]
        return self._mem[offset + _HEADER.size: offset + _HEADER.size + length].decode("utf-8", "replace")
