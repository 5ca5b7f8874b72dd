"""Side-by-side wrk benchmark: prefork vs gunicorn on the same app, same machine, same run.

Method (see benchmarks/README.md): each server runs one sync worker pinned to one core, wrk is pinned
to the other; rounds are interleaved (prefork, gunicorn, prefork, gunicorn, ...) so that the machine's
speed changes hit both alike; the figures reported are medians and ratios from the same run, plus the
server CPU time per request (user+system of master and workers, from /proc), the steadiest figure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVERS = {
    "prefork": lambda port, app, workers, extra: [sys.executable, "-m", "prefork", "-w", str(workers), "-b",
                                                  f"127.0.0.1:{port}", *extra, app],
    "gunicorn": lambda port, app, workers, extra: [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b",
                                                   f"127.0.0.1:{port}", *extra, app],
}


class Server:
    def __init__(self, name: str, app: str, core: str, workers: int, extra: list[str]) -> None:
        self.name = name
        self.port = free_port()
        cmd = ["taskset", "-c", core, *SERVERS[name](self.port, app, workers, extra)]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    if s.recv(16).startswith(b"HTTP/1.1 200"):
                        time.sleep(0.5)
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{self.name} did not start")

    def cpu_seconds(self) -> float:
        """user+system CPU of the master and all its children (workers)."""
        total = 0
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])
        return total / TICKS

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, 9)


POST_SCRIPT = 'wrk.method = "POST"\nwrk.body = string.rep("x", 65536)\n' \
              'wrk.headers["Content-Type"] = "application/octet-stream"\n'

# scenario -> (application path, Connection: close, wrk Lua script)
SCENARIOS = {
    "keepalive": ("/", False, None),
    "close": ("/", True, None),
    "json": ("/json", False, None),
    "mib": ("/mib", False, None),
    "file": ("/file", False, None),
    "post64k": ("/post", False, POST_SCRIPT),
}


def run_wrk(port: int, core: str, connections: int, duration: float, close: bool, path: str,
            script: str | None = None) -> tuple[float, int, str]:
    cmd = ["taskset", "-c", core, "wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency"]
    if close:
        cmd += ["-H", "Connection: close"]
    if script:
        script_path = Path(tempfile.gettempdir()) / "prefork-wrk-script.lua"
        script_path.write_text(script)
        cmd += ["-s", str(script_path)]
    out = subprocess.run([*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         timeout=duration + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    notes = " ".join(x for x in [errors and errors.group(1), non2xx and f"non2xx={non2xx.group(1)}"] if x)
    return rps, total, f"p99={p99.group(1) if p99 else '?'} {notes}".strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--scenario", choices=list(SCENARIOS), default="keepalive",
                        help="keepalive/close: hello world; json: 1 KiB JSON; mib: 1 MiB body; file: 1 MiB "
                        "file via wsgi.file_wrapper; post64k: 64 KiB POST read fully (examples/bench_app.py "
                        "unless --app is given)")
    parser.add_argument("--app", default=None)
    parser.add_argument("--path", default=None)
    parser.add_argument("--servers", default="prefork,gunicorn")
    parser.add_argument("--worker", choices=["sync", "threaded"], default="sync",
                        help="threaded = prefork -k threaded vs gunicorn -k gthread")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--server-core", default="1")
    parser.add_argument("--client-core", default="0")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    path, close, script = SCENARIOS[args.scenario]
    path = args.path or path
    if args.app is None:
        args.app = "examples.hello:app" if args.scenario in ("keepalive", "close") else "examples.bench_app:app"
    names = args.servers.split(",")
    results: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    extra = {"prefork": [], "gunicorn": []}
    if args.worker == "threaded":
        extra = {"prefork": ["-k", "threaded", "--threads", str(args.threads)],
                 "gunicorn": ["-k", "gthread", "--threads", str(args.threads)]}
    servers = {n: Server(n, args.app, args.server_core, 1, extra[n]) for n in names}
    try:
        for round_no in range(1, args.rounds + 1):
            for name in names:
                server = servers[name]
                cpu_before = server.cpu_seconds()
                rps, total, notes = run_wrk(server.port, args.client_core, args.connections, args.duration,
                                            close, path, script)
                cpu_us = (server.cpu_seconds() - cpu_before) / max(total, 1) * 1e6
                results[name].append((rps, cpu_us))
                print(f"round {round_no} {name:9s} {rps:10.0f} req/s  {cpu_us:7.1f} us CPU/req  {notes}", flush=True)
    finally:
        for server in servers.values():
            server.stop()

    base = names[-1]
    kind = "1 sync worker" if args.worker == "sync" else f"1 worker with {args.threads} threads"
    print(f"\n## {args.app} {args.scenario}, {args.connections} connections, {args.rounds} rounds x "
          f"{args.duration}s, {kind} each\n")
    print("| server | median req/s | min-max req/s | median CPU us/req | ratio req/s vs " + base
          + " | ratio CPU/req (" + base + " / server) |")
    print("|---|---|---|---|---|---|")
    base_rps = statistics.median(r for r, _ in results[base])
    base_cpu = statistics.median(c for _, c in results[base])
    for name in names:
        rps = [r for r, _ in results[name]]
        cpu = [c for _, c in results[name]]
        print(f"| {name} | {statistics.median(rps):.0f} | {min(rps):.0f}-{max(rps):.0f} | "
              f"{statistics.median(cpu):.1f} | {statistics.median(rps) / base_rps:.2f}x | "
              f"{base_cpu / statistics.median(cpu):.2f}x |")
    per_round = [a[0] / b[0] for a, b in zip(results[names[0]], results[base], strict=False)]
    print(f"\nper-round req/s ratios {names[0]}/{base}: " + ", ".join(f"{r:.2f}" for r in per_round))


if __name__ == "__main__":
    main()
