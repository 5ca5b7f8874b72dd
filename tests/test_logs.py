"""Access log: gunicorn's atoms and format, escaping of hostile values; error log format."""

from __future__ import annotations

import json
import re
import time
from types import SimpleNamespace

from helpers import Client, get
from prefork.logs import AccessLog, escape


class Sink:
    def __init__(self):
        self.text = ""

    def write(self, data):
        self.text += data

    def flush(self):
        pass


ENVIRON = {
    "REMOTE_ADDR": "10.1.2.3",
    "REQUEST_METHOD": "GET",
    "RAW_URI": "/a/b?x=1",
    "PATH_INFO": "/a/b",
    "QUERY_STRING": "x=1",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_REFERER": "http://ref/",
    "HTTP_USER_AGENT": "curl/8",
    "HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz",
    "HTTP_X_REQ": "abc",
    "CONTENT_TYPE": "text/plain",
    "wsgi.url_scheme": "http",
}
RESPONSE = SimpleNamespace(code=200, sent=13, headers_sent=True, headers=[("Content-Type", "text/html")])


def line(fmt: str, environ=ENVIRON, response=RESPONSE, duration=1.5) -> str:
    log = AccessLog(Sink(), fmt)
    return log.line(environ, response, duration)


def test_default_format_matches_gunicorn():
    text = line('%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"')
    assert re.fullmatch(
        r'10\.1\.2\.3 - user \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /a/b\?x=1 HTTP/1\.1" '
        r'200 13 "http://ref/" "curl/8"',
        text,
    ), text


def test_every_atom():
    fmt = "%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%(T)s|%(M)s|%(D)s|%(L)s|%(p)s"
    assert line(fmt).split("|")[:11] == [
        "GET",
        "/a/b",
        "x=1",
        "HTTP/1.1",
        "200",
        "13",
        "13",
        "1",
        "1500",
        "1500000",
        "1.500000",
    ]
    assert re.fullmatch(r"<\d+>", line(fmt).split("|")[11])


def test_header_and_environ_atoms():
    fmt = "%({x-req}i)s %({content-type}i)s %({content-type}o)s %({wsgi.url_scheme}e)s %({missing}i)s"
    assert line(fmt) == "abc text/plain text/html http -"


def test_b_is_dash_when_nothing_sent():
    empty = SimpleNamespace(code=204, sent=0, headers_sent=True, headers=[])
    assert line("%(b)s %(B)s", response=empty) == "- 0"


def test_hostile_values_cannot_forge_lines():
    environ = dict(ENVIRON, HTTP_USER_AGENT='x"\n1.2.3.4 - - [fake] "GET / HTTP/1.1" 200', RAW_URI="/\x1b[31m\\")
    text = line('"%(r)s" "%(a)s"', environ)
    assert "\n" not in text and "\x1b" not in text
    assert '\\"' in text and "\\x0a" in text and "\\x1b" in text and "\\\\" in text


def test_escape_keeps_plain_text():
    assert escape("plain text 123") == "plain text 123"
    assert escape("caf\xe9") == "caf\\xe9"


def test_access_log_through_a_server(fresh_server, tmp_path):
    path = tmp_path / "access.log"
    server = fresh_server("--access-logfile", str(path), "--access-logformat", '%(s)s "%(r)s" %({x-a}i)s')
    with Client(server.connect()) as client:
        client.send(b"GET /hello?q=1 HTTP/1.1\r\nHost: t\r\nX-A: one\r\n\r\n")
        client.read_response()
        client.send(b"GET /error HTTP/1.1\r\nHost: t\r\n\r\n")
        client.read_response()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and path.read_text().count("\n") < 3:
        time.sleep(0.05)
    lines = path.read_text().splitlines()
    assert '200 "GET /hello?q=1 HTTP/1.1" one' in lines
    assert '500 "GET /error HTTP/1.1" -' in lines


def test_error_log_format(server):
    get(server, "/hello")
    first = server.log().splitlines()[0]
    assert re.match(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[INFO\] Starting prefork", first)


def test_json_access_log_escapes_hostile_values():
    environ = dict(
        ENVIRON, HTTP_USER_AGENT='x"}\n{"forged": 1}\\\x00\x1b\xff', RAW_URI='/"\n', **{"prefork.request_id": "abc-1"}
    )
    log = AccessLog(Sink(), as_json=True)
    text = log.line(environ, RESPONSE, 0.25)
    assert "\n" not in text
    record = json.loads(text)
    assert record["user_agent"] == environ["HTTP_USER_AGENT"] and record["uri"] == '/"\n'
    assert (record["status"], record["bytes"], record["duration_ms"], record["request_id"]) == (200, 13, 250.0, "abc-1")


def test_request_id_in_environ_access_log_and_error_log(fresh_server, tmp_path):
    path = tmp_path / "access.json"
    server = fresh_server("--access-logfile", str(path), "--access-log-json")
    with Client(server.connect()) as client:
        client.send(b"GET /environ-json HTTP/1.1\r\nHost: t\r\nX-Request-ID: from-proxy-42\r\n\r\n")
        assert json.loads(client.read_response().body)["prefork.request_id"] == "from-proxy-42"
        client.send(b"GET /environ-json HTTP/1.1\r\nHost: t\r\nX-Request-ID: bad id\xff\r\n\r\n")
        generated = json.loads(client.read_response().body)["prefork.request_id"]
        assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", generated)
        client.send(b"GET /error HTTP/1.1\r\nHost: t\r\nX-Request-ID: err-7\r\n\r\n")
        client.read_response()
    log = server.wait_log("[req err-7] Error handling request GET /error")
    assert "Traceback" in log
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and path.read_text().count("\n") < 4:
        time.sleep(0.05)
    ids = [json.loads(line)["request_id"] for line in path.read_text().splitlines()]
    assert ids[1:] == ["from-proxy-42", generated, "err-7"]
