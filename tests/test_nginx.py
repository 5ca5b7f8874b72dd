"""prefork behind a real nginx (Debian package), over a unix socket and over TCP with upstream
keep-alive: forwarded headers, a large streamed upload, connection reuse.

The nginx config is generated for each run by helpers.running_nginx (its proxy settings mirror
conf/nginx.conf).
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from helpers import NGINX, Client, free_port, running_nginx

pytestmark = pytest.mark.skipif(NGINX is None or os.geteuid() != 0, reason="needs nginx (and root for it)")

HTTP = """
    client_max_body_size 100m;

    upstream prefork_unix {{ server unix:{sock}; keepalive 8; }}
    upstream prefork_tcp {{ server 127.0.0.1:{app_port}; keepalive 8; }}

    server {{
        listen 127.0.0.1:{port};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For 203.0.113.5;   # as if the client came from the internet
        proxy_set_header X-Forwarded-Proto https;
        proxy_request_buffering off;
        proxy_buffering off;
        location /unix/ {{ proxy_pass http://prefork_unix/; }}
        location /tcp/ {{ proxy_pass http://prefork_tcp/; }}
    }}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from helpers import start_server

    tmp = tmp_path_factory.mktemp("nginx")
    sock = tmp / "prefork.sock"
    app_port = free_port()
    # TCP peers other than 127.0.0.2 are not trusted: nginx's TCP connections come from 127.0.0.1,
    # so only the unix-socket upstream (always trusted) may set the scheme and client address.
    server = start_server(
        tmp,
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{app_port}",
        "--use-forwarded-for",
        "--forwarded-allow-ips",
        "127.0.0.2",
        "--keep-alive",
        "30",
        bind=f"unix:{sock}",
    )
    port = free_port()
    try:
        with running_nginx(tmp, HTTP.format(sock=sock, app_port=app_port, port=port), port):
            yield port, server
    finally:
        server.stop()


def get(port: int, path: str, extra: bytes = b"") -> Client:
    client = Client(socket.create_connection(("127.0.0.1", port), timeout=30))
    client.send(f"GET {path} HTTP/1.1\r\nHost: example.org\r\n".encode() + extra + b"Connection: close\r\n\r\n")
    return client


def environ_via(port: int, upstream: str) -> dict:
    with get(port, f"/{upstream}/environ-json") as client:
        response = client.read_response()
    assert response.status == 200, response
    return json.loads(response.body)


def test_trusted_unix_upstream_sets_scheme_and_client(stack):
    port, _ = stack
    env = environ_via(port, "unix")
    assert env["wsgi.url_scheme"] == "https"
    assert env["REMOTE_ADDR"] == "203.0.113.5"
    assert env["HTTP_HOST"] == "example.org"


def test_untrusted_tcp_upstream_is_not_believed(stack):
    port, _ = stack
    env = environ_via(port, "tcp")
    assert env["wsgi.url_scheme"] == "http"
    assert env["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize("upstream", ["unix", "tcp"])
def test_50_mb_upload_streams_through(stack, upstream):
    port, _ = stack
    size = 50 * 1024 * 1024
    with Client(socket.create_connection(("127.0.0.1", port), timeout=60)) as client:
        client.send(
            f"POST /{upstream}/echo-length HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        chunk = b"u" * (1024 * 1024)
        for _ in range(50):
            client.send(chunk)
        response = client.read_response()
    assert response.status == 200 and response.body == str(size).encode()


def test_upstream_keepalive_reuses_connections(stack):
    port, _ = stack
    ports = set()
    for _ in range(30):
        env = environ_via(port, "tcp")
        ports.add(env["REMOTE_PORT"])
    assert len(ports) <= 2, ports  # nginx keeps its connections to prefork open and reuses them
