"""PEP 3333 conformance: the server's environ, start_response and iteration pass wsgiref's validator
(which raises inside the app, turning any violation into a 500), plus the rules it cannot see."""

from __future__ import annotations

import pytest

from helpers import Client, get, request


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    from helpers import start_server

    srv = start_server(tmp_path_factory.mktemp("validated"), app="validated:app")
    yield srv
    srv.stop()


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
        b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nContent-Type: text/plain\r\n\r\nline1\nline2",
        b"POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nline1\n\r\n5\r\nline2\r\n0\r\n\r\n",
        b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /file HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /hello HTTP/1.0\r\n\r\n",
        b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
)
def test_validator_accepts_the_server(validated, raw):
    method = raw.split(b" ")[0].decode()
    with Client(validated.connect()) as client:
        client.send(raw)
        response = client.read_response(method)
    assert response.status == 200, validated.log()
    assert "AssertionError" not in validated.log()


def test_validated_bodies(validated):
    raw = b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nConnection: close\r\n\r\nline1\nline2"
    assert request(validated, raw).body == b"line1\nline2"
    assert get(validated, "/stream").body == b"abc"
    assert get(validated, "/file").body == b"wrapped bytes"
