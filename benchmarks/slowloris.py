"""Normal-client throughput of one prefork worker with and without 1,000 slowloris connections.

Two identical servers (one worker each) share the server core; the slow clients (a separate process
on the load generator's core) stay attached to one of them for the whole run, each sending one byte
of a request head per second and never finishing it, reconnecting when the server drops them at
--header-timeout. wrk measures hello-world keep-alive throughput, alternating between the two
servers round by round, so the machine's speed swings hit both alike.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import Server, run_wrk


def slow_clients(port: int, count: int, seconds: float) -> None:
    """Keep ``count`` connections dribbling a request head, one byte per second each."""
    head = b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"a" * 10_000
    sel = selectors.DefaultSelector()
    conns: dict[socket.socket, int] = {}

    def connect() -> None:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        conns[sock] = 0

    for _ in range(count):
        connect()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        for sock in list(conns):
            pos = conns[sock]
            try:
                sock.send(head[pos : pos + 1])
                conns[sock] = (pos + 1) % len(head)
            except OSError:  # dropped by the header timeout: come back, as an attacker would
                del conns[sock]
                sock.close()
                connect()
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    sel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--worker", choices=["sync", "threaded"], default="threaded")
    args = parser.parse_args()
    options = ("--worker-connections", str(args.slow + 100), "--header-timeout", "10")
    servers = {
        mode: Server(f"prefork {args.worker}", "examples.hello:app", "1", options) for mode in ("without", "with")
    }
    helper = None
    results: dict[str, list[float]] = {"without": [], "with": []}
    cpu: dict[str, list[float]] = {"without": [], "with": []}
    try:
        for server in servers.values():
            server.wait_ready()
        helper = subprocess.Popen(
            [
                "taskset",
                "-c",
                "0",
                sys.executable,
                __file__,
                "--_slow-child",
                str(servers["with"].port),
                str(args.slow),
                str(args.rounds * 2 * (args.duration + 1) + 10),
            ],
            start_new_session=True,
        )
        time.sleep(3)  # all slow connections open and dribbling
        for round_no in range(1, args.rounds + 1):
            for mode, server in servers.items():
                cpu_before = server.cpu_seconds()
                result = run_wrk(server.port, "0", 10, args.duration)
                cpu[mode].append((server.cpu_seconds() - cpu_before) / max(result.requests, 1) * 1e6)
                results[mode].append(result.rps)
                print(
                    f"round {round_no} {mode:7s} slow clients: {result.rps:10.0f} req/s  {cpu[mode][-1]:6.1f} us "
                    f"CPU/req (slow clients' share included)  p99 {result.p99_ms:.2f} ms  errors {result.errors}",
                    flush=True,
                )
    finally:
        if helper is not None:
            os.killpg(helper.pid, signal.SIGKILL)
            helper.wait()
        for server in servers.values():
            server.stop()
    without, with_ = statistics.median(results["without"]), statistics.median(results["with"])
    ratios = [b / a for a, b in zip(results["without"], results["with"], strict=True)]
    print(
        f"\n| worker | req/s without | req/s with {args.slow} slow | with/without (median of per-round) "
        f"| CPU us/req without | CPU us/req with |\n|---|---|---|---|---|---|\n"
        f"| {args.worker} | {without:.0f} | {with_:.0f} | {statistics.median(ratios):.1%} "
        f"(rounds: {', '.join(f'{r:.0%}' for r in ratios)}) | {statistics.median(cpu['without']):.1f} | "
        f"{statistics.median(cpu['with']):.1f} |"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--_slow-child":
        slow_clients(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
