"""Worker health in shared memory: one slot per worker, written by that worker, read by the master.

Created by the master before forking (an anonymous shared mmap, inherited across fork), so a
heartbeat is a memory write, never a file on disk. A slot holds the worker's state, its last
heartbeat (CLOCK_MONOTONIC, the same clock in every process), its request count and a message: the
reason of a boot failure or of a voluntary exit, which the master reports.
"""

from __future__ import annotations

import mmap
import struct

# RECYCLE: the worker reached --max-requests and asks the master for a replacement; it keeps serving
# until the replacement is ready and the master retires it.
BOOTING, READY, DRAINING, BOOT_FAILED, RECYCLE = 1, 2, 3, 4, 5

_HEADER = struct.Struct("<dBQI")  # heartbeat, state, requests, message length
_MESSAGE_SIZE = 4096
SLOT_SIZE = _HEADER.size + _MESSAGE_SIZE
_BEAT = struct.Struct("<d")
_STATE_OFFSET = 8
_REQUESTS = struct.Struct("<Q")
_REQUESTS_OFFSET = 9


class Scoreboard:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._mem = mmap.mmap(-1, capacity * SLOT_SIZE)

    def reset(self, index: int, now: float) -> None:
        """Prepare slot ``index`` for a new worker (called by the master before the fork)."""
        _HEADER.pack_into(self._mem, index * SLOT_SIZE, now, BOOTING, 0, 0)

    def beat(self, index: int, now: float) -> None:
        _BEAT.pack_into(self._mem, index * SLOT_SIZE, now)

    def set_state(self, index: int, state: int) -> None:
        self._mem[index * SLOT_SIZE + _STATE_OFFSET] = state

    def count_request(self, index: int, total: int) -> None:
        _REQUESTS.pack_into(self._mem, index * SLOT_SIZE + _REQUESTS_OFFSET, total)

    def set_message(self, index: int, text: str) -> None:
        data = text.encode("utf-8", "replace")[:_MESSAGE_SIZE]
        offset = index * SLOT_SIZE
        self._mem[offset + _HEADER.size: offset + _HEADER.size + len(data)] = data
        heartbeat, state, requests, _ = _HEADER.unpack_from(self._mem, offset)
        _HEADER.pack_into(self._mem, offset, heartbeat, state, requests, len(data))

    def read(self, index: int) -> tuple[float, int, int]:
        """``(heartbeat, state, requests)`` of a slot."""
        heartbeat, state, requests, _ = _HEADER.unpack_from(self._mem, index * SLOT_SIZE)
        return heartbeat, state, requests

    def message(self, index: int) -> str:
        offset = index * SLOT_SIZE
        length = _HEADER.unpack_from(self._mem, offset)[3]
        return self._mem[offset + _HEADER.size: offset + _HEADER.size + length].decode("utf-8", "replace")
