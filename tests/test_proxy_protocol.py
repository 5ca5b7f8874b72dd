"""PROXY protocol v1 and v2: the parser (whole and byte by byte) and a real server behind it."""

from __future__ import annotations

import json
import socket
import struct

import pytest

from helpers import Client, exchange, status_of
from prefork.http.errors import HTTPError
from prefork.http.proxy_protocol import V2_SIGNATURE, parse_proxy_header


def v2(command: int, family: int, addresses: bytes) -> bytes:
    return V2_SIGNATURE + struct.pack("!BBH", 0x20 | command, family, len(addresses)) + addresses


V2_TCP4 = v2(
    1,
    0x11,
    socket.inet_pton(socket.AF_INET, "203.0.113.9")
    + socket.inet_pton(socket.AF_INET, "10.0.0.1")
    + struct.pack("!HH", 51000, 80),
)
V2_TCP6 = v2(
    1,
    0x21,
    socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    + socket.inet_pton(socket.AF_INET6, "::1")
    + struct.pack("!HH", 40000, 443)
    + b"\x03\x00\x04abcd",
)  # with a TLV, ignored
V2_LOCAL = v2(0, 0x00, b"")

VALID = [
    (b"PROXY TCP4 198.51.100.22 10.0.0.1 35646 80\r\n", ("198.51.100.22", 35646)),
    (b"PROXY TCP6 2001:db8::1 ::1 35646 443\r\n", ("2001:db8::1", 35646)),
    (b"PROXY UNKNOWN\r\n", None),
    (V2_TCP4, ("203.0.113.9", 51000)),
    (V2_TCP6, ("2001:db8::7", 40000)),
    (V2_LOCAL, None),
]
INVALID = [
    b"PROXY TCP4 198.51.100.22 10.0.0.1 35646\r\n",
    b"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n",
    b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY " + b"x" * 120,
    b"GET / HTTP/1.1\r\n\r\n",
    V2_SIGNATURE[:11] + b"X" + b"\x21\x11\x00\x0c" + b"\x00" * 12,
    v2(1, 0x11, b"\x00" * 4),  # address block too short
    V2_SIGNATURE + b"\x31\x11\x00\x00",  # version 3
]


@pytest.mark.parametrize(("raw", "address"), VALID)
def test_valid_headers_whole_and_bytewise(raw, address):
    data = raw + b"GET / HTTP/1.1\r\n"
    assert parse_proxy_header(data) == (address, len(raw))
    for cut in range(len(raw)):
        assert parse_proxy_header(raw[:cut]) is None, cut


@pytest.mark.parametrize("raw", INVALID)
def test_malformed_headers_are_refused(raw):
    with pytest.raises(HTTPError):
        result = parse_proxy_header(raw)
        assert result is not None  # incomplete is not an answer for a malformed header
        parse_proxy_header(raw + b"\r\n" * 60)


def connect_from(server, source: str) -> socket.socket:
    """A connection from another loopback address (127.0.0.2 is the 'load balancer' here)."""
    sock = socket.socket()
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", server.port))
    return sock


def remote_of(server, prefix: bytes, source: str = "127.0.0.2") -> tuple[str, str]:
    with Client(connect_from(server, source)) as client:
        client.send(prefix + b"GET /environ-json HTTP/1.1\r\nHost: t\r\n\r\n")
        env = json.loads(client.read_response().body)
        client.send(b"GET /environ-json HTTP/1.1\r\nHost: t\r\n\r\n")  # keep-alive: the header counted once
        again = json.loads(client.read_response().body)
    assert (again["REMOTE_ADDR"], again["REMOTE_PORT"]) == (env["REMOTE_ADDR"], env["REMOTE_PORT"])
    return env["REMOTE_ADDR"], env["REMOTE_PORT"]


@pytest.mark.parametrize("kind", [["-k", "sync"], ["-k", "threaded", "--threads", "2"]])
def test_server_takes_client_address_from_proxy_header(fresh_server, kind):
    # 127.0.0.2 must send PROXY headers; the test's own 127.0.0.1 speaks plain HTTP.
    server = fresh_server("--proxy-protocol", "--proxy-allow-ips", "127.0.0.2", *kind)
    assert remote_of(server, b"PROXY TCP4 198.51.100.22 10.0.0.1 35646 80\r\n") == ("198.51.100.22", "35646")
    assert remote_of(server, V2_TCP6) == ("2001:db8::7", "40000")
    assert remote_of(server, V2_LOCAL)[0] == "127.0.0.2"  # LOCAL: the peer's own address
    with connect_from(server, "127.0.0.2") as sock:
        sock.sendall(b"PROXY TCP4 nonsense\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    with connect_from(server, "127.0.0.2") as sock:  # a header is required from the balancer
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")


def test_peers_outside_proxy_allow_ips_speak_plain_http(fresh_server):
    server = fresh_server("--proxy-protocol", "--proxy-allow-ips", "192.0.2.1")
    assert remote_of(server, b"", source="127.0.0.1")[0] == "127.0.0.1"
    data = exchange(server, b"PROXY TCP4 198.51.100.22 10.0.0.1 35646 80\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status_of(data) == 400  # a forged header from an untrusted peer is not believed
