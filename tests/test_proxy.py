"""Behind a proxy: headers about the client are believed only from trusted peers."""

from __future__ import annotations

import json

import pytest

from helpers import exchange, request, run_cli, status_of
from prefork.proxy import DEFAULT_SCHEME_HEADERS, ProxyPolicy


def policy(allow="127.0.0.1,::1,10.0.0.0/8", forwarded_for=True) -> ProxyPolicy:
    return ProxyPolicy(allow, DEFAULT_SCHEME_HEADERS, forwarded_for)


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        (("127.0.0.1", 1), True),
        (("10.9.8.7", 1), True),
        (("::1", 1, 0, 0), True),
        (("::ffff:127.0.0.1", 1, 0, 0), True),
        (("192.0.2.1", 1), False),
        ("", True),
    ],
)
def test_trust(peer, trusted):
    assert policy().trusts(peer) is trusted


def test_forwarded_for_takes_the_rightmost_untrusted_hop():
    env = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9, 10.0.0.1"}
    policy().apply(env)
    assert env["REMOTE_ADDR"] == "203.0.113.9" and env["prefork.peer_addr"] == "10.0.0.2"


def test_rfc7239_forwarded_header():
    env = {"REMOTE_ADDR": "127.0.0.1", "HTTP_FORWARDED": 'for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"'}
    policy().apply(env)
    assert env["REMOTE_ADDR"] == "2001:db8::1"


def test_contradictory_scheme_headers_are_refused():
    env = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_SSL": "off"}
    with pytest.raises(Exception, match="contradictory"):
        policy().apply(env)


def env_of(server, headers: str) -> dict:
    raw = f"GET /environ-json HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n".encode()
    return json.loads(request(server, raw).body)


def test_trusted_proxy_sets_scheme_and_client(fresh_server):
    server = fresh_server("--use-forwarded-for")  # loopback is trusted by default
    env = env_of(server, "X-Forwarded-Proto: https\r\nX-Forwarded-For: 198.51.100.7\r\n")
    assert env["wsgi.url_scheme"] == "https"
    assert env["REMOTE_ADDR"] == "198.51.100.7" and env["prefork.peer_addr"] == "127.0.0.1"


def test_untrusted_peer_is_not_believed(fresh_server):
    server = fresh_server("--use-forwarded-for", "--forwarded-allow-ips", "192.0.2.1")
    env = env_of(server, "X-Forwarded-Proto: https\r\nX-Forwarded-For: 198.51.100.7\r\n")
    assert env["wsgi.url_scheme"] == "http" and env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_X_FORWARDED_FOR"] == "198.51.100.7"  # passed on, not believed


def test_forwarded_for_is_opt_in(fresh_server):
    env = env_of(fresh_server(), "X-Forwarded-For: 198.51.100.7\r\n")
    assert env["REMOTE_ADDR"] == "127.0.0.1" and "prefork.peer_addr" not in env


def test_contradictory_scheme_headers_get_400(fresh_server):
    server = fresh_server()
    raw = b"GET /hello HTTP/1.1\r\nHost: t\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n\r\n"
    assert status_of(exchange(server, raw)) == 400


def test_invalid_allow_list_is_a_usage_error(tmp_path):

    out = run_cli("--forwarded-allow-ips", "10.0.0.300", "testapp:app")
    assert out.returncode == 2 and "forwarded-allow-ips" in out.stderr
