"""systemd integration: socket activation, the sd_notify message sequence, the shipped units,
and running as PID 1 in a container-like PID namespace."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import APPS, ROOT, Client, child_pids, eventually, free_port, process_state

UNITS = Path(ROOT) / "systemd"


def spawn(tmp_path, cmd: list[str], env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    log = tmp_path / "server.log"
    full_env = dict(os.environ, PYTHONPATH=APPS + os.pathsep + ROOT, **(env or {}))
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=APPS, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return proc, log


def stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


def wait_http(port: int, timeout: float = 15.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with Client(socket.create_connection(("127.0.0.1", port), timeout=2)) as client:
                client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                return client.read_response().body
        except (OSError, EOFError):
            time.sleep(0.1)
    raise AssertionError("no HTTP answer")


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"), reason="systemd-socket-activate missing")
def test_socket_activation_uses_the_given_socket(tmp_path):
    port = free_port()
    # -b names an address that cannot be bound: proof that the inherited socket is used as given.
    proc, log = spawn(
        tmp_path,
        [
            "systemd-socket-activate",
            "-l",
            f"127.0.0.1:{port}",
            sys.executable,
            "-m",
            "prefork",
            "-b",
            "192.0.2.1:1",
            "testapp:app",
        ],
    )
    try:
        assert wait_http(port) == b"Hello, World!"
        assert f"Listening at: 127.0.0.1:{port}" in log.read_text()
    finally:
        stop(proc)


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []

    def collect(self, until, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until(self):
            try:
                message = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), message))  # the time it arrived, not when recv began
        assert until(self), self.messages

    def kinds(self) -> list[str]:
        return [m.split("\n")[0].split("=")[0] for _, m in self.messages if not m.startswith("WATCHDOG")]


def test_notify_sequence_for_start_reload_and_stop(tmp_path):
    notify = NotifySocket(tmp_path / "notify.sock")
    port = free_port()
    started = time.monotonic()
    proc, log = spawn(
        tmp_path,
        [sys.executable, "-m", "prefork", "-w", "2", "-b", f"127.0.0.1:{port}", "slowboot:app"],
        env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"},
    )
    try:
        notify.collect(lambda n: "READY" in n.kinds())
        ready_at = next(t for t, m in notify.messages if m.startswith("READY=1"))
        assert ready_at - started >= 1.0  # not before the workers imported the (slow) application
        assert get_port(port) == b"booted slowly"
        proc.send_signal(signal.SIGHUP)
        notify.collect(lambda n: n.kinds().count("READY") == 2)
        reloading = next(m for _, m in notify.messages if m.startswith("RELOADING=1"))
        assert "MONOTONIC_USEC=" in reloading
        assert "Reload complete" in log.read_text()
        proc.send_signal(signal.SIGTERM)
        notify.collect(lambda n: "STOPPING" in n.kinds())
        assert proc.wait(timeout=15) == 0
        assert notify.kinds() == ["READY", "RELOADING", "READY", "STOPPING"]
        assert sum(1 for _, m in notify.messages if m == "WATCHDOG=1") >= 3
    finally:
        stop(proc)


def get_port(port: int) -> bytes:
    with Client(socket.create_connection(("127.0.0.1", port), timeout=5)) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        return client.read_response().body


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze missing")
def test_shipped_units_verify_cleanly():
    out = subprocess.run(
        ["systemd-analyze", "verify", str(UNITS / "prefork.socket"), str(UNITS / "prefork.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == "", out.stderr


def _can_unshare() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    return (
        subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=30
        ).returncode
        == 0
    )


@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare")
def test_pid1_reaps_orphans_and_handles_term(tmp_path):
    version = tmp_path / "version"
    version.write_text("pid1")
    port = free_port()
    proc, log = spawn(
        tmp_path,
        [
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
            sys.executable,
            "-m",
            "prefork",
            "-b",
            f"127.0.0.1:{port}",
            "versioned:app",
        ],
        env={"PREFORK_TEST_VERSION_FILE": str(version)},
    )
    try:
        eventually(lambda: child_pids(proc.pid), what="the namespaced master")
        master = next(iter(child_pids(proc.pid)))
        with open(f"/proc/{master}/status") as f:
            nspid = next(line for line in f if line.startswith("NSpid:"))
        assert nspid.split()[-1] == "1"  # the master is PID 1 in its namespace
        wait_http(port)
        for _ in range(3):
            with Client(socket.create_connection(("127.0.0.1", port), timeout=5)) as client:
                client.send(b"GET /orphan HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                assert client.read_response().body == b"pid1"
        time.sleep(1.5)  # the orphaned sleeps (0.2 s) have exited and were re-parented to PID 1
        zombies = [pid for pid in child_pids(master) if process_state(pid) == "Z"]
        assert zombies == [], zombies
        os.kill(master, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert "Shutting down: Master" in log.read_text()
    finally:
        stop(proc)


def test_new_master_after_usr2_announces_mainpid(tmp_path):
    notify = NotifySocket(tmp_path / "notify.sock")
    port = free_port()
    proc, _ = spawn(
        tmp_path,
        [sys.executable, "-m", "prefork", "-b", f"127.0.0.1:{port}", "testapp:app"],
        env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")},
    )
    try:
        notify.collect(lambda n: "READY" in n.kinds())
        proc.send_signal(signal.SIGUSR2)
        notify.collect(lambda n: any(m.startswith("MAINPID=") for _, m in n.messages))
        main_pid = int(next(m for _, m in notify.messages if m.startswith("MAINPID=")).split("=")[1])
        assert main_pid != proc.pid and main_pid in child_pids(proc.pid)
        notify.collect(lambda n: n.kinds().count("READY") == 2)
    finally:
        stop(proc)
