"""A small, bounded load generator for tests: keep-alive clients in threads, results counted.

Retry rule (RFC 9112 §9.3.1, what nginx and HTTP client libraries do): a request that fails on a
*reused* connection before any byte of the response arrived may have raced the server closing that
idle connection; it is retried once on a new connection. Anything else that does not produce a
complete response is a failure. A refused connection means the kernel never accepted it.
"""

from __future__ import annotations

import collections
import threading
import time

from helpers import Client, Server


class Load:
    def __init__(self, server: Server, path: str = "/", clients: int = 4, pause: float = 0.0) -> None:
        self.server = server
        self.path = path
        self.pause = pause
        self.ok = 0
        self.refused = 0
        self.retried = 0
        self.failures: list[str] = []
        self.bodies: collections.Counter[bytes] = collections.Counter()
        self.last_body = b""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def wait_for(self, predicate, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(self):
                    return
            time.sleep(0.05)
        raise AssertionError(
            f"load condition not met: ok={self.ok} failures={self.failures[:5]} bodies={dict(self.bodies)}"
        )

    def _record(self, body: bytes | None, failure: str = "") -> None:
        with self._lock:
            if failure:
                self.failures.append(failure)
            elif body is not None:
                self.ok += 1
                self.bodies[body] += 1
                self.last_body = body

    def _run(self) -> None:
        client = None
        raw = f"GET {self.path} HTTP/1.1\r\nHost: load\r\n\r\n".encode()
        while not self._stop.is_set():
            fresh = client is None
            try:
                if client is None:
                    client = Client(self.server.connect(timeout=15))
                client.send(raw)
                response = client.read_response()
            except ConnectionRefusedError:
                with self._lock:
                    self.refused += 1
                client = None
                time.sleep(0.02)
                continue
            except (OSError, EOFError) as exc:
                got_bytes = bool(client and client.buf)
                if client is not None:
                    client.sock.close()
                client = None
                if not fresh and not got_bytes:
                    with self._lock:
                        self.retried += 1
                    continue  # idle-connection race: retry on a new connection
                self._record(None, f"{type(exc).__name__}: {exc}")
                continue
            if response.status != 200:
                self._record(None, f"status {response.status}: {response.body[:100]!r}")
            else:
                self._record(response.body)
            if response.header("Connection") == "close":
                client.sock.close()
                client = None
            if self.pause:
                time.sleep(self.pause)
        if client is not None:
            client.sock.close()
