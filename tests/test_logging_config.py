"""Logging configuration: dictConfig/fileConfig, captured application output, syslog, and the
forwarder headers a trusted proxy may use to set SCRIPT_NAME."""

from __future__ import annotations

import json
import socket
import time

from helpers import get, request


def wait_for_text(path, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in {path}")


def test_log_config_dict_adds_a_handler(fresh_server, tmp_path):
    extra = tmp_path / "extra.log"
    config = {
        "version": 1,
        "handlers": {"extra": {"class": "logging.FileHandler", "filename": str(extra)}},
        "loggers": {"prefork.error": {"handlers": ["extra"], "level": "INFO"}},
    }
    server = fresh_server("--log-config-dict", json.dumps(config))
    get(server, "/hello")
    assert "Booted worker" in wait_for_text(extra, "Booted worker")  # the configured handler replaced ours


def test_log_config_file(fresh_server, tmp_path):
    extra = tmp_path / "file-config.log"
    ini = tmp_path / "logging.ini"
    ini.write_text(
        "[loggers]\nkeys=root,prefork\n[handlers]\nkeys=file\n[formatters]\nkeys=plain\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n"
        "[logger_prefork]\nlevel=INFO\nhandlers=file\nqualname=prefork.error\npropagate=0\n"
        f"[handler_file]\nclass=FileHandler\nformatter=plain\nargs=({str(extra)!r},)\n"
        "[formatter_plain]\nformat=CONFIGURED %(message)s\n"
    )
    server = fresh_server("--log-config", str(ini))
    get(server, "/hello")
    assert "CONFIGURED Booted worker" in wait_for_text(extra, "CONFIGURED Booted worker")


def test_capture_output_sends_prints_to_the_error_log(fresh_server, tmp_path):
    errors = tmp_path / "errors.log"
    server = fresh_server("--capture-output", "--error-logfile", str(errors))
    assert get(server, "/printer").body == b"printed"
    wait_for_text(errors, "printed by the application")


def test_syslog_over_udp(fresh_server):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    try:
        port = receiver.getsockname()[1]
        fresh_server(
            "--log-syslog",
            "--log-syslog-to",
            f"udp://127.0.0.1:{port}",
            "-n",
            "shop",
            "--log-syslog-facility",
            "local0",
        )
        messages = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(b"Booted worker" in m for m in messages):
            messages.append(receiver.recv(4096))
        line = next(m for m in messages if b"Booted worker" in m)
        assert line.startswith(b"<134>prefork.shop[")  # local0 (16) * 8 + info (6)
    finally:
        receiver.close()


def test_forwarder_headers_only_from_trusted_peers(fresh_server):
    raw = b"GET /app/environ-json HTTP/1.1\r\nHost: t\r\nSCRIPT_NAME: /app\r\nConnection: close\r\n\r\n"
    trusted = json.loads(request(fresh_server(), raw).body)  # loopback is trusted by default
    assert (trusted["SCRIPT_NAME"], trusted["PATH_INFO"]) == ("/app", "/environ-json")
    untrusted = fresh_server("--forwarded-allow-ips", "192.0.2.1")
    raw = raw.replace(b"/app/environ-json", b"/environ-json")
    env = json.loads(request(untrusted, raw).body)
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/environ-json"
