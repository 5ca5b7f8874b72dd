"""TLS with the ssl module: handshake in the event loop, keep-alive, bodies, files, client certificates."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from helpers import Client, run_until_exit

pytestmark = pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    """A throwaway self-signed certificate for localhost / 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(tmp / "key.pem"),
            "-out",
            str(tmp / "cert.pem"),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return str(tmp / "cert.pem"), str(tmp / "key.pem")


def tls_client(server, cert, client_cert: bool = False) -> Client:
    context = ssl.create_default_context(cafile=cert[0])
    if client_cert:
        context.load_cert_chain(*cert)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return Client(context.wrap_socket(raw, server_hostname="localhost"))


def start_tls(fresh_server, cert, *args):
    """Start a TLS server and wait until a handshake succeeds (the plain-HTTP probe cannot tell)."""
    server = fresh_server("--certfile", cert[0], "--keyfile", cert[1], *args, wait=False)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            server.wait_log("Booted worker")  # the listener answers before the worker booted
            return server
        except OSError:
            assert time.monotonic() < deadline and server.proc.poll() is None, server.log()
            time.sleep(0.05)


@pytest.mark.parametrize("kind", [["-k", "sync"], ["-k", "threaded", "--threads", "2"]])
def test_https_keep_alive_body_and_file(fresh_server, cert, payload_file, kind):
    server = start_tls(fresh_server, cert, *kind)
    with tls_client(server, cert) as client:
        client.send(b"GET /environ-json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        env = json.loads(client.read_response().body)
        assert env["wsgi.url_scheme"] == "https"
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("localhost", "443")  # the https default (G5)
        client.send(
            b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        )
        assert client.read_response().body == b"hello"
        client.send(b"GET /file HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with open(payload_file, "rb") as f:
            assert client.read_response().body == f.read()  # never os.sendfile: it would skip TLS


def test_plain_and_silent_clients_cannot_block_tls(fresh_server, cert):
    server = start_tls(fresh_server, cert)
    silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)  # never starts a handshake
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            assert plain.recv(100) == b""  # not TLS: dropped, nothing answered
        except ConnectionResetError:
            pass
    with tls_client(server, cert) as client:
        client.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert client.read_response().body == b"Hello, World!"
    silent.close()


def test_client_certificates_required(fresh_server, cert):
    server = start_tls(fresh_server, cert, "--ca-certs", cert[0], "--cert-reqs", "required")
    # TLS 1.3: the refusal of a client without a certificate arrives with the first read
    with pytest.raises((ssl.SSLError, ConnectionResetError, EOFError)), tls_client(server, cert) as client:
        client.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        client.read_response()
    with tls_client(server, cert, client_cert=True) as client:
        client.send(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert client.read_response().body == b"Hello, World!"


def test_unusable_certificate_is_a_clear_error(tmp_path):
    missing = str(tmp_path / "missing.pem")
    code, log = run_until_exit(tmp_path, "--certfile", missing)
    assert code == 1 and f"TLS: cannot use --certfile {missing}" in log
