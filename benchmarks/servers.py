"""The servers under test and the load generator: how each is started, pinned, measured and stopped.

Every server runs one worker process pinned to the server core; wrk (and nginx, when a scenario puts
it in front) run on the other core. CPU time is user+system of the server's master and workers, read
from /proc, so the load generator's and nginx's own time never count.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
THREADS = 4
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# name -> (command builder (port, app) -> argv, available?)
SERVERS = {
    "prefork sync": (lambda port, app: [PY, "-m", "prefork", "-w", "1", "-b", f"127.0.0.1:{port}", app], lambda: True),
    "prefork threaded": (
        lambda port, app: [
            PY,
            "-m",
            "prefork",
            "-w",
            "1",
            "-k",
            "threaded",
            "--threads",
            str(THREADS),
            "-b",
            f"127.0.0.1:{port}",
            app,
        ],
        lambda: True,
    ),
    "gunicorn sync": (
        lambda port, app: [PY, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", app],
        lambda: _installed("gunicorn"),
    ),
    "gunicorn gthread": (
        lambda port, app: [
            PY,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "-k",
            "gthread",
            "--threads",
            str(THREADS),
            "-b",
            f"127.0.0.1:{port}",
            app,
        ],
        lambda: _installed("gunicorn"),
    ),
    "waitress": (
        lambda port, app: [PY, "-m", "waitress", f"--listen=127.0.0.1:{port}", f"--threads={THREADS}", app],
        lambda: _installed("waitress"),
    ),
    "granian": (
        lambda port, app: [
            PY,
            "-m",
            "granian",
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--blocking-threads",
            str(THREADS),
            "--no-access-log",
            app,
        ],
        lambda: _installed("granian"),
    ),
}


def available(names: list[str]) -> list[str]:
    return [name for name in names if SERVERS[name][1]()]


def wait_http(port: int, deadline: float, path: str = "/") -> bool:
    """Poll until ``GET path`` answers 200 (or the deadline passes)."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request)
                if s.recv(16).startswith(b"HTTP/1.1 200"):
                    return True
        except OSError:
            pass
        time.sleep(0.005)
    return False


def process_tree(pid: int) -> list[int]:
    pids = [pid]
    for p in pids:  # grows while walked: children, grandchildren (granian's workers), ...
        children = Path(f"/proc/{p}/task/{p}/children")
        try:
            pids += [int(c) for c in children.read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return pids


class Server:
    """One server process group on the server core, started on a free loopback port."""

    def __init__(self, name: str, app: str, core: str, extra: tuple[str, ...] = ()) -> None:
        self.name = name
        self.port = free_port()
        argv = SERVERS[name][0](self.port, app)
        argv[-1:-1] = extra  # options go before the application
        argv = ["taskset", "-c", core, *argv]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )

    def wait_ready(self) -> float:
        """Seconds from start to the first 200 response."""
        if not wait_http(self.port, self.started + 30):
            self.stop()
            raise SystemExit(f"{self.name} did not start")
        return time.monotonic() - self.started

    def cpu_seconds(self) -> float:
        total = 0
        for pid in process_tree(self.proc.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            total += int(fields[11]) + int(fields[12])
        return total / TICKS

    def pss_kib(self) -> int:
        total = 0
        for pid in process_tree(self.proc.pid):
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
            except (FileNotFoundError, ProcessLookupError):
                pass
        return total

    def stop(self) -> None:
        stop_group(self.proc)


def stop_group(proc: subprocess.Popen, first: int = signal.SIGTERM) -> None:
    for sig in (first, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(10)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


NGINX_CONFIG = """
user root;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log error;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream app {{ server 127.0.0.1:{upstream}; {keepalive} }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_set_header Host $host;
            {keepalive_proxy}
        }}
    }}
}}
"""


class Nginx:
    """A real nginx on the load generator's core, proxying to ``upstream`` (HTTP/1.0 unless keepalive)."""

    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

    def __init__(self, upstream: int, core: str, keepalive: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="prefork-bench-nginx-"))
        self.port = free_port()
        conf = self.tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONFIG.format(
                tmp=self.tmp,
                upstream=upstream,
                port=self.port,
                keepalive="keepalive 32;" if keepalive else "",
                keepalive_proxy='proxy_http_version 1.1; proxy_set_header Connection "";' if keepalive else "",
            )
        )
        self.proc = subprocess.Popen(
            ["taskset", "-c", core, self.binary, "-c", str(conf), "-p", str(self.tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_http(self.port, time.monotonic() + 15):
            self.stop()
            raise SystemExit("nginx did not start: " + (self.tmp / "error.log").read_text())

    def stop(self) -> None:
        stop_group(self.proc, signal.SIGQUIT)
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass
class WrkResult:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(
    port: int,
    core: str,
    connections: int,
    duration: float,
    path: str = "/",
    close: bool = False,
    script: str | None = None,
) -> WrkResult:
    cmd = ["taskset", "-c", core, "wrk", "-t1", f"-c{connections}", f"-d{int(duration)}s", "--latency"]
    if close:
        cmd += ["-H", "Connection: close"]
    if script:
        script_path = Path(tempfile.gettempdir()) / f"prefork-wrk-{os.getpid()}.lua"
        script_path.write_text(script)
        cmd += ["-s", str(script_path)]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=duration + 30
    ).stdout
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return WrkResult(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        requests=int(re.search(r"(\d+) requests in", out).group(1)),
        p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
        p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
        errors=errors + (int(non2xx.group(1)) if non2xx else 0),
    )
