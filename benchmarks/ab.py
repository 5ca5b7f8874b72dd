"""A/B of prefork against an earlier revision of itself, or of two option sets: interleaved rounds.

    python benchmarks/ab.py --before 4e71d4a [--rounds 8] [--duration 4] [--path /] [-- extra prefork args]
    python benchmarks/ab.py --b-args="--metrics-bind 127.0.0.1:9100"      (this tree, without / with)

The earlier revision is checked out with ``git worktree`` into a temporary folder; both servers run one
worker pinned to the server core, wrk runs on the other, and rounds alternate A B A B so that the
machine's speed swings hit both alike. Prints per-round figures, then the median ratio of requests per
second (B / A, B = this tree) and the median server CPU time per request of each. The order within a
round alternates (A B, then B A) so that a machine that is faster for whichever runs first in a pair
favours neither; an A/A run (no --before, no --b-args) shows the noise floor.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import PY, ROOT, TICKS, free_port, process_tree, run_wrk, stop_group, wait_http


def start(source: Path, core: str, extra: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = ["taskset", "-c", core, PY, "-m", "prefork", "-w", "1", "-b", f"127.0.0.1:{port}", *extra,
            "examples.bench_app:app"]
    proc = subprocess.Popen(argv, cwd=source, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"})
    if not wait_http(port, time.monotonic() + 30):
        stop_group(proc)
        raise SystemExit(f"prefork from {source} did not start")
    return proc, port


def cpu_seconds(pid: int) -> float:
    total = 0
    for child in process_tree(pid):
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to compare against (default: this tree for both)")
    parser.add_argument("--b-args", default="", help="prefork options for B only (e.g. the feature measured)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=4)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--path", default="/")
    parser.add_argument("extra", nargs="*", help="prefork options for both servers")
    args = parser.parse_args()
    before_dir = ROOT
    if args.before:
        before_dir = Path(tempfile.mkdtemp(prefix="prefork-before-"))
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before_dir), args.before],
                       check=True, capture_output=True)
    servers = {}
    try:
        servers = {"A (before)" if args.before else "A": start(before_dir, "1", args.extra),
                   "B (this tree)" if args.before else "B (--b-args)": start(ROOT, "1",
                                                                            [*args.extra, *args.b_args.split()])}
        for _, port in servers.values():
            run_wrk(port, "0", args.connections, 2, args.path)  # warm-up
        rps: dict[str, list[float]] = {name: [] for name in servers}
        cpu: dict[str, list[float]] = {name: [] for name in servers}
        for round_number in range(args.rounds):
            order = list(servers.items())
            if round_number % 2:
                order.reverse()  # A B, B A, ...: whoever runs first in a round gets no systematic edge
            for name, (proc, port) in order:
                before = cpu_seconds(proc.pid)
                result = run_wrk(port, "0", args.connections, args.duration, args.path)
                rps[name].append(result.rps)
                cpu[name].append((cpu_seconds(proc.pid) - before) / max(result.requests, 1) * 1e6)
                print(f"round {round_number + 1} {name:14} {result.rps:10.0f} req/s {cpu[name][-1]:6.1f} us CPU/req "
                      f"errors {result.errors}", flush=True)
        a, b = servers
        ratios = [y / x for x, y in zip(rps[a], rps[b], strict=True)]
        print(f"\nB/A requests per second, median of {args.rounds} rounds: {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
        for name in servers:
            print(f"{name}: median {statistics.median(rps[name]):.0f} req/s, "
                  f"{statistics.median(cpu[name]):.1f} us CPU/request")
    finally:
        for proc, _ in servers.values():
            stop_group(proc)
        if args.before:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before_dir)],
                           capture_output=True)


if __name__ == "__main__":
    main()
