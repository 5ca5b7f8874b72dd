"""Soak: the locust mixed workload against one server while its master gets SIGHUP every few seconds.

Every HUP starts a new generation of workers and retires the old one; no request may fail. The
report gives requests, failures (with their errors), throughput, p50/p99 and the number of reloads.
Exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import ROOT, SERVERS, Server, stop_group

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default="prefork threaded", choices=list(SERVERS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--duration", type=int, default=60, help="seconds")
    parser.add_argument("--hup-every", type=float, default=3.0, help="seconds between reloads; 0: none")
    args = parser.parse_args()
    if importlib.util.find_spec("locust") is None:
        raise SystemExit("locust is not installed: pip install -e '.[bench]'")

    server = Server(args.server, "examples.bench_app:app", "1", ("-w", str(args.workers)))
    out = Path(tempfile.mkdtemp(prefix="prefork-soak-"))
    locust = None
    try:
        server.wait_ready()
        locust = subprocess.Popen(
            [
                "taskset",
                "-c",
                "0",
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(HERE / "locustfile.py"),
                "--headless",
                "-u",
                str(args.users),
                "-r",
                str(args.users),
                "-t",
                f"{args.duration}s",
                "--host",
                f"http://127.0.0.1:{server.port}",
                "--csv",
                str(out / "soak"),
                "--only-summary",
                "--loglevel",
                "ERROR",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        reloads = 0
        deadline = time.monotonic() + args.duration + 60
        next_hup = time.monotonic() + 2 + args.hup_every
        while locust.poll() is None and time.monotonic() < deadline:
            if args.hup_every and time.monotonic() >= next_hup:
                os.kill(server.proc.pid, signal.SIGHUP)
                reloads += 1
                next_hup += args.hup_every
            time.sleep(0.05)
    finally:
        if locust is not None:
            stop_group(locust)
        server.stop()

    with open(out / "soak_stats.csv") as f:
        total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    with open(out / "soak_failures.csv") as f:
        failures = list(csv.DictReader(f))
    failed = int(total["Failure Count"])
    print(
        f"## Soak: {args.server}, {args.workers} workers, {args.users} locust users, {args.duration} s, "
        f"SIGHUP every {args.hup_every} s\n"
    )
    print("| requests | failed | req/s | p50 ms | p99 ms | reloads (HUP) |\n|---|---|---|---|---|---|")
    print(
        f"| {total['Request Count']} | {failed} | {float(total['Requests/s']):.0f} | {total['50%']} | "
        f"{total['99%']} | {reloads} |"
    )
    for row in failures:
        print(f"failure: {row['Method']} {row['Name']}: {row['Error']} x{row['Occurrences']}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
