"""Memory and start-up: PSS of master + workers (idle and after load) and time to the first response,
prefork against gunicorn, alternating runs. PSS comes from /proc/<pid>/smaps_rollup (Linux).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wrk_compare import ROOT, SERVERS, free_port, run_wrk


def pss_kib(pid: int) -> int:
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def first_response(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/1.1 200"):
                    return True
        except OSError:
            time.sleep(0.005)
    return False


def measure(name: str, app: str, workers: int) -> tuple[float, int, int]:
    port = free_port()
    cmd = ["taskset", "-c", "1", *SERVERS[name](port, app, workers, [])]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        if not first_response(port, started + 30):
            raise SystemExit(f"{name} did not answer")
        startup = time.monotonic() - started
        time.sleep(1.0)
        idle = pss_kib(proc.pid)
        run_wrk(port, "0", 10, 3, False, "/")
        loaded = pss_kib(proc.pid)
        return startup, idle, loaded
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--app", default="examples.hello:app")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, int, int]]] = {"prefork": [], "gunicorn": []}
    for round_no in range(1, args.rounds + 1):
        for name in results:
            startup, idle, loaded = measure(name, args.app, args.workers)
            results[name].append((startup, idle, loaded))
            print(f"round {round_no} {name:9s} first response {startup * 1000:6.0f} ms  PSS idle {idle} KiB  "
                  f"after load {loaded} KiB", flush=True)
    print(f"\n## master + {args.workers} worker(s), {args.app}, medians of {args.rounds} rounds\n")
    print("| server | first response (ms) | PSS idle (KiB) | PSS after 3 s of wrk (KiB) |")
    print("|---|---|---|---|")
    for name, rows in results.items():
        print(f"| {name} | {statistics.median(r[0] for r in rows) * 1000:.0f} | "
              f"{statistics.median(r[1] for r in rows):.0f} | {statistics.median(r[2] for r in rows):.0f} |")


if __name__ == "__main__":
    main()
