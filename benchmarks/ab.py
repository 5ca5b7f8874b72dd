"""A/B of prefork against an earlier revision of itself, or of two option sets: interleaved rounds.

    python benchmarks/ab.py --before 4e71d4a [--rounds 8] [--duration 4] [--path /] [-- extra prefork args]
    python benchmarks/ab.py --b-args="--metrics-bind 127.0.0.1:9100"      (this tree, without / with)
    python benchmarks/ab.py --against granian --together [--close | --path /json]   (another server as A)

The earlier revision is checked out with ``git worktree`` into a temporary folder; both servers run one
worker pinned to the server core, wrk runs on the other, and rounds alternate A B A B so that the
machine's speed swings hit both alike. Prints per-round figures, then the median ratio of requests per
second (B / A, B = this tree) and the median server CPU time per request of each. The order within a
round alternates (A B, then B A) so that a machine that is faster for whichever runs first in a pair
favours neither; an A/A run (no --before, no --b-args) shows the noise floor.

``--together`` runs A and B at the same time instead, both on the server core and each with its own
wrk on the client core: every swing of the machine's speed then hits both in the same instant, and the
kernel shares the server core between them, so the ratio of their CPU time per request (and of their
request rates) is the steadiest comparison this machine allows.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import PY, ROOT, SERVERS, TICKS, free_port, process_tree, run_wrk, stop_group, wait_http


def start(source: Path, core: str, extra: list[str], server: str = "") -> tuple[subprocess.Popen, int]:
    """prefork from ``source`` with ``extra`` options, or another server of servers.py (``server``)."""
    port = free_port()
    app = "examples.bench_app:app"
    command = (
        SERVERS[server][0](port, app)
        if server
        else [PY, "-m", "prefork", "-w", "1", "-b", f"127.0.0.1:{port}", *extra, app]
    )
    proc = subprocess.Popen(
        ["taskset", "-c", core, *command],
        cwd=source,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={"PYTHONPATH": str(source), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    if not wait_http(port, time.monotonic() + 30):
        stop_group(proc)
        raise SystemExit(f"{server or 'prefork'} from {source} did not start")
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


def source(revision: str, worktrees: list[Path]) -> Path:
    """A folder to run prefork from: ``revision`` itself when it is one (local edits, e.g. to bisect
    inside a commit), else a temporary git worktree of it (added to ``worktrees``)."""
    if Path(revision).is_dir():
        return Path(revision).resolve()
    folder = Path(tempfile.mkdtemp(prefix="prefork-ab-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder), revision], check=True, capture_output=True
    )
    worktrees.append(folder)
    return folder


def measure(batch: list, args: argparse.Namespace) -> list[tuple]:
    """Run wrk against every server of ``batch`` at once; (name, wrk result, server µs CPU per request)."""
    before = {name: cpu_seconds(proc.pid) for name, (proc, _) in batch}
    with concurrent.futures.ThreadPoolExecutor(len(batch)) as pool:
        futures = {
            name: pool.submit(run_wrk, port, "0", args.connections, args.duration, args.path, args.close)
            for name, (_, port) in batch
        }
        results = {name: future.result() for name, future in futures.items()}
    return [
        (name, results[name], (cpu_seconds(proc.pid) - before[name]) / max(results[name].requests, 1) * 1e6)
        for name, (proc, _) in batch
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision or folder to compare against (default: this tree for both)")
    parser.add_argument("--after", help="git revision or folder for B (default: this tree), to bisect a change")
    parser.add_argument("--against", choices=sorted(SERVERS), help="A is this server instead (e.g. granian)")
    parser.add_argument("--b-args", default="", help="prefork options for B only (e.g. the feature measured)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=4)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--path", default="/")
    parser.add_argument("--close", action="store_true", help="a new connection per request (Connection: close)")
    parser.add_argument("--together", action="store_true", help="run A and B at the same time on one core")
    parser.add_argument("extra", nargs="*", help="prefork options for both servers")
    args = parser.parse_args()
    worktrees: list[Path] = []
    before_dir = source(args.before, worktrees) if args.before else ROOT
    after_dir = source(args.after, worktrees) if args.after else ROOT
    servers = {}
    try:
        servers = {
            (args.against or ("A (before)" if args.before else "A")): start(
                before_dir, "1", args.extra, args.against or ""
            ),
            "B (this tree)" if args.before else "B (--b-args)": start(
                after_dir, "1", [*args.extra, *args.b_args.split()]
            ),
        }
        for _, port in servers.values():
            run_wrk(port, "0", args.connections, 2, args.path)  # warm-up
        rps: dict[str, list[float]] = {name: [] for name in servers}
        cpu: dict[str, list[float]] = {name: [] for name in servers}
        for round_number in range(args.rounds):
            order = list(servers.items())
            if round_number % 2:
                order.reverse()  # A B, B A, ...: whoever runs first in a round gets no systematic edge
            batches = [order] if args.together else [[pair] for pair in order]
            for batch in batches:
                for name, result, cpu_us in measure(batch, args):
                    rps[name].append(result.rps)
                    cpu[name].append(cpu_us)
                    print(
                        f"round {round_number + 1} {name:14} {result.rps:10.0f} req/s {cpu_us:6.1f} us CPU/req "
                        f"errors {result.errors}",
                        flush=True,
                    )
        a, b = servers
        for label, figures, invert in (("requests per second", rps, False), ("CPU time per request", cpu, True)):
            ratios = [(x / y if invert else y / x) for x, y in zip(figures[a], figures[b], strict=True)]
            print(
                f"\nB/A {label}{' (inverted: >1 = B cheaper)' if invert else ''}, median of {args.rounds} "
                f"rounds: {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
            )
        for name in servers:
            print(
                f"{name}: median {statistics.median(rps[name]):.0f} req/s, "
                f"{statistics.median(cpu[name]):.1f} us CPU/request"
            )
    finally:
        for proc, _ in servers.values():
            stop_group(proc)
        for folder in worktrees:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], capture_output=True)


if __name__ == "__main__":
    main()
