"""Head-of-line blocking: fast keep-alive requests with a slow endpoint mixed in, per server.

    python benchmarks/headofline.py [--duration 10] [--clients 8] [--servers "prefork sync,gunicorn sync"]

Each server runs 2 workers (threaded ones 2 threads each). ``--clients`` keep-alive clients each send
about 100 requests a second to ``/pid`` (which names the worker that answered); one request in 200 goes
to ``/slow`` (1 s). Reported per server: the fast requests' latency (p50, p99, max), how many fast
requests took over 100 ms, and the per-worker split of all requests. A fast request that waits behind a
slow one on its worker shows up as a ~1 s maximum.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import SERVERS, Server, available

WORKERS = {
    "prefork sync": ["-w", "2"],
    "prefork threaded": ["-w", "2", "--threads", "2"],
    "gunicorn sync": ["-w", "2"],
    "gunicorn gthread": ["-w", "2", "--threads", "2"],
    "granian": ["--workers", "2", "--blocking-threads", "2"],
}


def client(
    port: int, number: int, clients: int, stop: float, fast: list[float], split: dict[str, int], lock: threading.Lock
) -> None:
    sock = None
    sent = 0
    while time.monotonic() < stop:
        slow = (sent * clients + number) % 200 == 199
        path = "/slow" if slow else "/pid"
        started = time.monotonic()
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
            body, closed = read_response(sock)
        except OSError:
            if sock is not None:
                sock.close()
            sock = None
            continue
        elapsed = time.monotonic() - started
        with lock:
            if not slow:
                fast.append(elapsed)
                split[body] = split.get(body, 0) + 1
        if closed:
            sock.close()
            sock = None
        sent += 1
        time.sleep(max(0.0, 0.01 - elapsed))
    if sock is not None:
        sock.close()


def read_response(sock: socket.socket) -> tuple[str, bool]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lower = head.lower()
    length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0]) if b"content-length:" in lower else None
    if length is None:  # chunked: our app's bodies are one chunk
        while not rest.endswith(b"0\r\n\r\n"):
            rest += sock.recv(65536)
        body = rest.split(b"\r\n")[1]
    else:
        while len(rest) < length:
            rest += sock.recv(65536)
        body = rest[:length]
    return body.decode(), b"connection: close" in lower


def measure(name: str, duration: float, clients: int) -> None:
    server = Server(name, "examples.bench_app:app", "1", tuple(WORKERS[name]))
    try:
        server.wait_ready()
        time.sleep(1.0)  # every worker booted
        fast: list[float] = []
        split: dict[str, int] = {}
        lock = threading.Lock()
        stop = time.monotonic() + duration
        threads = [
            threading.Thread(target=client, args=(server.port, i, clients, stop, fast, split, lock))
            for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(duration + 30)
        fast.sort()
        p99 = fast[int(len(fast) * 0.99)] if fast else 0.0
        over = sum(1 for x in fast if x > 0.1)
        print(
            f"| {name} | {len(fast)} | {statistics.median(fast) * 1000:.1f} | {p99 * 1000:.1f} | "
            f"{fast[-1] * 1000:.0f} | {over} | {sorted(split.values(), reverse=True)} |",
            flush=True,
        )
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--servers", default=",".join(WORKERS))
    args = parser.parse_args()
    names = available([n.strip() for n in args.servers.split(",") if n.strip() in SERVERS])
    print("| server | fast requests | p50 ms | p99 ms | max ms | fast > 100 ms | requests per worker |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        measure(name, args.duration, args.clients)


if __name__ == "__main__":
    main()
