"""Scaling with workers: req/s for 1, 2, 4 (8, 16 ...) workers, and how requests split over them.

    python benchmarks/scaling.py [--workers 1,2,4,8,16] [--client-cores 1] [--duration 5] [--rounds 3]

wrk runs pinned to the first ``--client-cores`` cores, prefork to all the others; each worker count
is measured in interleaved rounds (1, 2, 4, 1, 2, 4, ...). The per-worker split comes from the
master's /status (--metrics-bind): with balanced accept it stays even. Worker counts above twice the
server cores are skipped. On a 2-core machine the server has one core, so 1 -> 2 workers shows the
split and the cost of a second process on the same core, not a speed-up; run it unchanged on a
16-core host (e.g. ``--client-cores 4``) to see the scaling.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import PY, ROOT, free_port, run_wrk, stop_group, wait_http


def status(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4,8,16")
    parser.add_argument("--client-cores", type=int, default=max(1, (os.cpu_count() or 2) // 4))
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    cpus = os.cpu_count() or 2
    client = f"0-{args.client_cores - 1}"
    server_cores = f"{args.client_cores}-{cpus - 1}" if cpus > args.client_cores else "0"
    counts = [n for n in map(int, args.workers.split(",")) if n <= 2 * max(1, cpus - args.client_cores)]
    servers = {}
    try:
        for n in counts:
            port, metrics = free_port(), free_port()
            proc = subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    server_cores,
                    PY,
                    "-m",
                    "prefork",
                    "-w",
                    str(n),
                    "-b",
                    f"127.0.0.1:{port}",
                    "--metrics-bind",
                    f"127.0.0.1:{metrics}",
                    "examples.bench_app:app",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            if not wait_http(port, time.monotonic() + 30):
                raise SystemExit(f"{n} workers did not start")
            time.sleep(1.0)  # every worker booted
            servers[n] = (proc, port, metrics)
            run_wrk(port, client, args.connections, 2)  # warm-up
        rps: dict[int, list[float]] = {n: [] for n in servers}
        for _ in range(args.rounds):
            for n, (_, port, _) in servers.items():
                rps[n].append(run_wrk(port, client, args.connections, args.duration).rps)
        print(f"client cores {client}, server cores {server_cores}, {args.connections} connections\n")
        print("| workers | req/s (median) | req/s per worker | vs 1 worker | requests per worker |")
        print("|---|---|---|---|---|")
        base = statistics.median(rps[counts[0]]) if counts else 1
        for n, (_, _, metrics) in servers.items():
            median = statistics.median(rps[n])
            split = sorted((w["requests"] for w in status(metrics)["workers"]), reverse=True)
            print(f"| {n} | {median:.0f} | {median / n:.0f} | {median / base:.2f}x | {split} |")
    finally:
        for proc, _, _ in servers.values():
            stop_group(proc)


if __name__ == "__main__":
    main()
