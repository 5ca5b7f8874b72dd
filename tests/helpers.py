"""Test helpers: start and stop real prefork processes, and a tiny raw HTTP/1.1 client."""

from __future__ import annotations

import codecs
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = os.path.join(ROOT, "tests", "apps")


def process_state(pid: int) -> str:
    """The /proc state letter of ``pid`` (R, S, Z, ...), or "gone"."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0]
    except FileNotFoundError:
        return "gone"


def is_running(pid: int) -> bool:
    return process_state(pid) not in ("Z", "gone")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log_path: str
    host: str = "127.0.0.1"
    unix_path: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def connect(self, timeout: float = 5.0) -> socket.socket:
        if self.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(self.unix_path)
            return sock
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in server log:\n{self.log()}")

    def wait_started(self, count: int = 1, timeout: float = 10.0) -> None:
        """Wait until the test app has started ``count`` /sleep requests in this server's life."""
        eventually(
            lambda: self.log().count("testapp: sleep started") >= count,
            timeout,
            f"{count} /sleep request(s) to start:\n{self.log()[-2000:]}",
        )

    def stop(self) -> None:
        """Kill the whole process group (master and workers), whatever state it is in: QUIT first (the
        fast stop: a worker stuck in a request exits at once), then KILL."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGQUIT)
                self.proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def start_server(
    tmp_path,
    *args: str,
    app: str = "testapp:app",
    wait: bool = True,
    env: dict | None = None,
    bind: str | None = None,
    preexec=None,
) -> Server:
    """Start ``python -m prefork`` in its own process group; wait until it answers."""
    port = free_port()
    log_path = str(tmp_path / f"prefork-{port}.log")
    unix_path = None
    if bind is None:
        bind = f"127.0.0.1:{port}"
    elif bind.startswith("unix:"):
        unix_path = bind[5:]
    cmd = [sys.executable, "-m", "prefork", "-b", bind, *args, app]
    full_env = dict(os.environ, PYTHONPATH=APPS + os.pathsep + ROOT, PYTHONUNBUFFERED="1")
    full_env.update(env or {})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=APPS,
            env=full_env,
            start_new_session=True,
            preexec_fn=preexec,
        )
    server = Server(proc, port, log_path, unix_path=unix_path)
    if wait:
        try:
            wait_until_serving(server)
        except BaseException:
            server.stop()
            raise
    return server


def run_until_exit(tmp_path, *args: str, timeout: float = 15.0, **kwargs) -> tuple[int, str]:
    """Start a server expected to stop by itself (a start-up error); return (exit status, log)."""
    server = start_server(tmp_path, *args, wait=False, **kwargs)
    try:
        code = server.proc.wait(timeout=timeout)
    finally:
        server.stop()
    return code, server.log()


def wait_until_serving(server: Server, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited with {server.proc.returncode}:\n{server.log()}")
        try:
            with server.connect(timeout=1) as sock:
                sock.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"server did not start serving:\n{server.log()}")


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes = b""

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ",".join(values) if values else None

    def header_count(self, name: str) -> int:
        return sum(1 for n, _ in self.headers if n.lower() == name.lower())


class Client:
    """A raw HTTP/1.1 client over one socket: send bytes, read responses exactly as framed."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed; got {self.buf!r}")
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed after {len(self.buf)} of {n} bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, method: str = "GET") -> Response:
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        _, status, reason = ([*lines[0].split(" ", 2), ""])[:3]
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        response = Response(int(status), reason, headers, b"", head)
        code = int(status)
        if method == "HEAD" or code < 200 or code in (204, 304):
            return response
        if (response.header("Transfer-Encoding") or "").lower() == "chunked":
            body = b""
            while True:
                size = int(self._read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")
                    break
                body += self._read_exact(size)
                assert self._read_exact(2) == b"\r\n"
            response.body = body
        elif response.header("Content-Length") is not None:
            response.body = self._read_exact(int(response.header("Content-Length")))
        else:
            response.body = self.read_to_close()
        return response

    def read_to_close(self) -> bytes:
        while self._fill():
            pass
        data, self.buf = self.buf, b""
        return data

    def is_closed(self, timeout: float = 2.0) -> bool:
        """True when the server closed the connection (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            while self._fill():
                pass
            return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def request(server: Server, raw: bytes, method: str = "GET") -> Response:
    with Client(server.connect()) as client:
        client.send(raw)
        return client.read_response(method)


def get(server: Server, path: str = "/", headers: str = "", method: str = "GET") -> Response:
    raw = f"{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n".encode()
    return request(server, raw, method)


def exchange(server: Server, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes and return everything the server sends until it closes."""
    with server.connect(timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def status_of(raw_response: bytes) -> int:
    assert raw_response.startswith(b"HTTP/1.1 "), raw_response[:200]
    return int(raw_response[9:12])


def served_by(server) -> int | None:
    """The pid of the worker that answers /pid, or None while nothing answers."""
    try:
        return int(get(server, "/pid").body)
    except OSError:
        return None


def eventually(predicate, timeout: float = 20.0, what: str = "condition", interval: float = 0.02) -> None:
    """Wait until ``predicate()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
_NGINX_CONFIG = """
user root;
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{http}
}}
"""


@contextmanager
def running_nginx(tmp, http: str, port: int):
    """A real nginx (foreground, its own process group) with ``http`` inside its http block,
    listening on ``port``; stopped (QUIT, then KILL) however the block ends."""
    conf = tmp / "nginx.conf"
    conf.write_text(_NGINX_CONFIG.format(tmp=tmp, http=http))
    nginx = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(tmp)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False

        eventually(listening, 15, "nginx listening")
        yield nginx
    finally:
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            try:
                os.killpg(nginx.pid, sig)
                nginx.wait(10)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue


# -- processes ------------------------------------------------------------------------------------


def child_pids(pid: int) -> set[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return {int(p) for p in f.read().split()}
    except FileNotFoundError:
        return set()


def wait_exit(server: Server, timeout: float) -> int:
    try:
        return server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"server still running after {timeout}s:\n{server.log()}") from None


def background_get(server: Server, path: str) -> dict:
    """Start a request in a thread; the dict gets 'response' or 'error' when it ends."""
    result: dict = {}

    def run():
        try:
            with Client(server.connect(timeout=20)) as client:
                client.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                result["response"] = client.read_response()
        except Exception as exc:  # noqa: BLE001 - the test inspects whatever happened
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    result["thread"] = thread
    return result


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "prefork", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=APPS,
        env=dict(os.environ, PYTHONPATH=APPS + os.pathsep + ROOT, **(env or {})),
    )


# -- the request corpus (tests/corpus: NAME.http raw bytes, NAME.json the expected verdict) ----------

CORPUS = Path(__file__).parent / "corpus"
CORPUS_CASES = sorted(p.stem for p in CORPUS.glob("*.http"))


def load_case(name: str) -> tuple[bytes, dict]:
    raw = codecs.escape_decode((CORPUS / f"{name}.http").read_text("ascii").encode("ascii"))[0]
    expected = json.loads((CORPUS / f"{name}.json").read_text())
    return raw, expected
