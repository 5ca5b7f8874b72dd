"""Normal-client throughput of one prefork worker with and without 1,000 slowloris connections.

The slow clients (a separate process on the load generator's core) each send one byte of a request
head per second and never finish it, reconnecting when the server drops them at --header-timeout.
wrk measures hello-world keep-alive throughput; rounds alternate without / with the slow clients.
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
                sock.send(head[pos:pos + 1])
                conns[sock] = (pos + 1) % len(head)
            except OSError:  # dropped by the header timeout: come back, as an attacker would
                del conns[sock]
                sock.close()
                connect()
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    sel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--worker", choices=["sync", "threaded"], default="threaded")
    args = parser.parse_args()
    server = Server(f"prefork {args.worker}", "examples.hello:app", "1",
                    ("--worker-connections", str(args.slow + 100), "--header-timeout", "10"))
    server.wait_ready()
    results: dict[str, list[float]] = {"without": [], "with": []}
    try:
        for round_no in range(1, args.rounds + 1):
            for mode in ("without", "with"):
                helper = None
                if mode == "with":
                    helper = subprocess.Popen(
                        ["taskset", "-c", "0", sys.executable, __file__, "--_slow-child", str(server.port),
                         str(args.slow), str(args.duration + 4)], start_new_session=True)
                    time.sleep(3)  # all slow connections open and dribbling
                result = run_wrk(server.port, "0", 10, args.duration)
                results[mode].append(result.rps)
                print(f"round {round_no} {mode:7s} slow clients: {result.rps:10.0f} req/s  p99 {result.p99_ms:.2f} ms  "
                      f"errors {result.errors}", flush=True)
                if helper is not None:
                    os.killpg(helper.pid, signal.SIGKILL)
                    helper.wait()
    finally:
        server.stop()
    without, with_ = statistics.median(results["without"]), statistics.median(results["with"])
    print(f"\n{args.worker} worker, hello keep-alive, 10 wrk connections: median {without:.0f} req/s without, "
          f"{with_:.0f} req/s with {args.slow} slowloris connections ({with_ / without:.1%} of normal)")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--_slow-child":
        slow_clients(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
