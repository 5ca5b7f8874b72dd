"""What the master reports about the pool (--metrics-bind): Prometheus text, the /status document.

Built in the master from the scoreboard (every worker's slot, including its request statistics),
the pool's own records (generations, restarts by cause, the counts of workers that exited) and
/proc (CPU, memory, descriptors of the master and each worker). Pure rendering over a ``Snapshot``
apart from the /proc and socket reads in ``take_snapshot``; never touches a worker.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from . import scoreboard as sb
from .stats import BUCKETS, Totals

STATE_NAMES = {
    sb.BOOTING: "booting",
    sb.READY: "ready",
    sb.DRAINING: "draining",
    sb.BOOT_FAILED: "boot-failed",
    sb.RECYCLE: "ready",
}
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_TCP_INFO_SIZE = 104
_QUEUE = struct.Struct("<II")  # tcpi_unacked, tcpi_sacked: after 8 one-byte fields and rto, ato, snd_mss, rcv_mss
_QUEUE_OFFSET = 24


@dataclass
class WorkerView:
    slot: int
    pid: int
    generation: int
    state: str
    requests: int
    running: list[tuple[float, str]]  # (start, request line) per busy thread
    connections: int
    handed_off: int
    taken_over: int
    totals: Totals
    process: dict[str, float]
    last_exit: str


@dataclass
class Snapshot:
    now: float  # CLOCK_MONOTONIC, as the scoreboard's times
    master: dict[str, float]
    workers: list[WorkerView]
    retired_handoffs: tuple[int, int]
    restarts: dict[str, int]
    listen_queues: list[tuple[str, int, int]]  # (address, queued, backlog)
    generation: int
    stopping: bool
    ready: bool
    totals: Totals = field(default_factory=Totals)


def process_info(pid: int) -> dict[str, float]:
    """CPU seconds, resident bytes, open descriptors and start time (epoch seconds) from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as f:
            resident = int(f.read().split()[1]) * _PAGE
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, IndexError, ValueError):
        return {}
    return {
        "cpu_seconds": (int(fields[11]) + int(fields[12])) / _TICKS,
        "resident_bytes": resident,
        "open_fds": fds,
        "start_time": _boot_time() + int(fields[19]) / _TICKS,
    }


def _boot_time() -> float:
    try:
        with open("/proc/stat") as f:
            return float(next(line.split()[1] for line in f if line.startswith("btime")))
    except (OSError, StopIteration):
        return 0.0


def listen_queue(sock: socket.socket) -> tuple[int, int] | None:
    """(connections waiting in the kernel's accept queue, its size) of a listening TCP socket."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_SIZE)
    except OSError:
        return None
    if len(info) < _QUEUE_OFFSET + _QUEUE.size:
        return None
    queued, backlog = _QUEUE.unpack_from(info, _QUEUE_OFFSET)  # what a listener reports in these two
    return queued, backlog


def take_snapshot(pool: Any, listeners: list[Any], stopping: bool, now: float) -> Snapshot:
    board = pool.board
    workers = []
    for proc in list(pool.workers.values()):
        if proc.slot is None:
            continue
        _, state, requests = board.read(proc.slot)
        handed_off, taken_over = board.handoffs(proc.slot)
        totals = Totals.unpack(board.stats_block(proc.slot)) if board.stats_size else Totals()
        name = STATE_NAMES.get(state, "gone")
        running = board.running(proc.slot)
        if name == "ready" and running:
            name = "busy"
        workers.append(
            WorkerView(
                proc.slot,
                proc.pid,
                proc.generation,
                name,
                requests,
                running,
                board.connections(proc.slot),
                handed_off,
                taken_over,
                totals,
                process_info(proc.pid),
                pool.last_exit.get(proc.slot, ""),
            )
        )
    queues = []
    for listener in listeners:
        queue = listen_queue(listener.sock)
        if queue is not None:
            queues.append((listener.address, *queue))
    ready = not stopping and any(w.generation == pool.generation and w.state in ("ready", "busy") for w in workers)
    snapshot = Snapshot(
        now,
        process_info(os.getpid()),
        workers,
        pool.retired_handoffs,
        dict(pool.restarts),
        queues,
        pool.generation,
        stopping,
        ready,
    )
    snapshot.totals.add(pool.retired, gauges=False)
    for worker in workers:
        snapshot.totals.add(worker.totals)
    return snapshot


def _line(name: str, labels: dict[str, Any], value: float) -> str:
    number = str(int(value)) if float(value).is_integer() else repr(float(value))  # full precision
    if labels:
        inner = ",".join(f'{key}="{_escape(str(val))}"' for key, val in labels.items())
        return f"{name}{{{inner}}} {number}"
    return f"{name} {number}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(out: list[str], name: str, kind: str, help_text: str, samples: list[tuple[dict, float]]) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    out.extend(_line(name, labels, value) for labels, value in samples)


def prometheus(snapshot: Snapshot) -> str:
    """The Prometheus text exposition format 0.0.4."""
    out: list[str] = []
    totals = snapshot.totals
    _family(
        out,
        "prefork_requests_total",
        "counter",
        "Requests answered, by method and status code.",
        [({"method": method, "code": code}, count) for (method, code), count in sorted(totals.requests.items())],
    )
    buckets, cumulative = [], 0
    for bound, count in zip([*BUCKETS, float("inf")], totals.buckets, strict=True):
        cumulative += count
        buckets.append(({"le": "+Inf" if bound == float("inf") else f"{bound:g}"}, cumulative))
    _family(
        out,
        "prefork_request_duration_seconds",
        "histogram",
        "Time from the request head to the end of the response.",
        [],
    )
    out.extend(_line("prefork_request_duration_seconds_bucket", labels, value) for labels, value in buckets)
    out.append(_line("prefork_request_duration_seconds_sum", {}, round(totals.duration_sum, 6)))
    out.append(_line("prefork_request_duration_seconds_count", {}, totals.count))
    in_progress = sum(len(w.running) for w in snapshot.workers)
    _family(out, "prefork_requests_in_progress", "gauge", "Requests running now.", [({}, in_progress)])
    open_connections = sum(w.connections for w in snapshot.workers)
    _family(
        out,
        "prefork_connections",
        "gauge",
        "Client connections held by the workers.",
        [({"state": "open"}, open_connections), ({"state": "idle"}, totals.idle)],
    )
    states = {name: 0 for name in ("booting", "ready", "busy", "draining")}
    for worker in snapshot.workers:
        states[worker.state] = states.get(worker.state, 0) + 1
    _family(
        out,
        "prefork_workers",
        "gauge",
        "Worker processes by state.",
        [({"state": state}, count) for state, count in states.items()],
    )
    causes = {cause: 0 for cause in ("crash", "timeout", "oom-kill", "max-requests", "reload", "signal", "exit")}
    causes.update(snapshot.restarts)
    _family(
        out,
        "prefork_worker_restarts_total",
        "counter",
        "Workers replaced, by cause.",
        [({"cause": cause}, count) for cause, count in causes.items()],
    )
    _family(
        out,
        "prefork_listen_queue",
        "gauge",
        "Connections waiting in the kernel's accept queue.",
        [({"listener": address}, queued) for address, queued, _ in snapshot.listen_queues],
    )
    _family(
        out,
        "prefork_listen_queue_max",
        "gauge",
        "Size of the kernel's accept queue.",
        [({"listener": address}, backlog) for address, _, backlog in snapshot.listen_queues],
    )
    handed = snapshot.retired_handoffs[0] + sum(w.handed_off for w in snapshot.workers)
    taken = snapshot.retired_handoffs[1] + sum(w.taken_over for w in snapshot.workers)
    _family(
        out,
        "prefork_handoffs_total",
        "counter",
        "Connections moved from a busy worker to a free one.",
        [({"direction": "out"}, handed), ({"direction": "in"}, taken)],
    )
    _family(
        out, "prefork_request_body_bytes_total", "counter", "Request body bytes (as declared).", [({}, totals.bytes_in)]
    )
    _family(out, "prefork_response_body_bytes_total", "counter", "Response body bytes sent.", [({}, totals.bytes_out)])
    processes = [({"process": "master", "pid": os.getpid()}, snapshot.master)]
    processes += [({"process": "worker", "slot": w.slot, "pid": w.pid}, w.process) for w in snapshot.workers]
    for name, key, kind, help_text in (
        ("process_cpu_seconds_total", "cpu_seconds", "counter", "User and system CPU time."),
        ("process_resident_memory_bytes", "resident_bytes", "gauge", "Resident memory."),
        ("process_open_fds", "open_fds", "gauge", "Open file descriptors."),
        ("process_start_time_seconds", "start_time", "gauge", "Start time since the epoch."),
    ):
        _family(out, name, kind, help_text, [(labels, info[key]) for labels, info in processes if key in info])
    return "\n".join(out) + "\n"


def status_document(snapshot: Snapshot) -> str:
    """The /status document: the master and one entry per worker."""
    now = snapshot.now
    document = {
        "master": {
            "pid": os.getpid(),
            "generation": snapshot.generation,
            "stopping": snapshot.stopping,
            "ready": snapshot.ready,
            **snapshot.master,
        },
        "time": time.time(),
        "requests_total": snapshot.totals.count,
        "duration_buckets": dict(zip([*map(str, BUCKETS), "+Inf"], snapshot.totals.buckets, strict=True)),
        "restarts": snapshot.restarts,
        "workers": [
            {
                "slot": w.slot,
                "pid": w.pid,
                "generation": w.generation,
                "state": w.state,
                "requests": w.requests,
                "connections": w.connections,
                "handed_off": w.handed_off,
                "taken_over": w.taken_over,
                "running": [{"request": line, "age": round(now - start, 3)} for start, line in w.running],
                "last_exit": w.last_exit,
                **w.process,
            }
            for w in sorted(snapshot.workers, key=lambda w: w.slot)
        ],
    }
    return json.dumps(document, indent=1) + "\n"
