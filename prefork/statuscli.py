"""``prefork status ADDRESS`` and ``prefork top ADDRESS``: the pool as the master's /status shows it.

ADDRESS is the --metrics-bind address (HOST:PORT or unix:PATH; default $PREFORK_METRICS_BIND).
``status`` prints one table; ``top`` redraws it every --interval seconds with plain ANSI escapes,
adding requests per second and the p50/p99 latency of the last interval (from the histogram).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any

CLEAR = "\x1b[H\x1b[2J"


def fetch_status(address: str, timeout: float = 5.0) -> dict[str, Any]:
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address[5:])
    else:
        host, _, port = address.rpartition(":")
        sock = socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout)
    with sock:
        sock.sendall(b"GET /status HTTP/1.1\r\nHost: prefork\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        raise OSError(f"{address} answered {status_line}")
    return json.loads(body)


def _mib(value: float | None) -> str:
    return f"{value / 1048576:.1f}M" if value else "-"


def table(status: dict[str, Any]) -> str:
    master = status["master"]
    state = "stopping" if master["stopping"] else ("ready" if master["ready"] else "not ready")
    restarts = " ".join(f"{k}={v}" for k, v in sorted(status["restarts"].items())) or "none"
    lines = [
        f"master {master['pid']}  generation {master['generation']}  {state}  "
        f"cpu {master.get('cpu_seconds', 0):.2f}s  rss {_mib(master.get('resident_bytes'))}  "
        f"requests {status['requests_total']}  restarts {restarts}",
        f"{'slot':>4} {'pid':>7} {'gen':>3} {'state':<9} {'requests':>9} {'conns':>5} {'handoffs':>9} "
        f"{'rss':>7} {'cpu':>7}  oldest request",
    ]
    for worker in status["workers"]:
        running = sorted(worker["running"], key=lambda r: -r["age"])
        oldest = f"{running[0]['request'][:50]} {running[0]['age']:.1f}s" if running else "-"
        lines.append(
            f"{worker['slot']:>4} {worker['pid']:>7} {worker['generation']:>3} {worker['state']:<9} "
            f"{worker['requests']:>9} {worker['connections']:>5} "
            f"{worker['handed_off']:>4}/{worker['taken_over']:<4} {_mib(worker.get('resident_bytes')):>7} "
            f"{worker.get('cpu_seconds', 0):>6.2f}s  {oldest}"
        )
    return "\n".join(lines)


def percentile(buckets: dict[str, int], fraction: float) -> str:
    """The upper bound of the histogram bucket holding the given fraction of the requests."""
    total = sum(buckets.values())
    if not total:
        return "-"
    seen = 0
    for bound, count in buckets.items():
        seen += count
        if seen >= fraction * total:
            return f"<={float(bound) * 1000:g}ms" if bound != "+Inf" else ">10s"
    return "-"


def interval_line(before: dict[str, Any], after: dict[str, Any], seconds: float) -> str:
    rate = (after["requests_total"] - before["requests_total"]) / seconds
    delta = {
        bound: after["duration_buckets"][bound] - before["duration_buckets"].get(bound, 0)
        for bound in after["duration_buckets"]
    }
    return f"{rate:.1f} req/s  p50 {percentile(delta, 0.5)}  p99 {percentile(delta, 0.99)}  (last {seconds:.1f}s)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"prefork {argv[0]}", description=__doc__.splitlines()[0])
    parser.add_argument(
        "address",
        nargs="?",
        default=os.environ.get("PREFORK_METRICS_BIND"),
        help="the --metrics-bind address (default: $PREFORK_METRICS_BIND)",
    )
    parser.add_argument("--interval", type=float, default=1.0, help="top: seconds between refreshes")
    parser.add_argument("--count", type=int, default=0, help="top: stop after this many refreshes (0: never)")
    args = parser.parse_args(argv[1:])
    if not args.address:
        parser.error("give the --metrics-bind address (or set PREFORK_METRICS_BIND)")
    try:
        previous = fetch_status(args.address)
        if argv[0] == "status":
            print(table(previous))
            return 0
        frames = 0
        while not args.count or frames < args.count:
            time.sleep(args.interval)
            current = fetch_status(args.address)
            sys.stdout.write(CLEAR + table(current) + "\n" + interval_line(previous, current, args.interval) + "\n")
            sys.stdout.flush()
            previous = current
            frames += 1
    except (OSError, ValueError) as exc:
        print(f"prefork {argv[0]}: cannot read {args.address}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
