"""Issue G: defects found by fuzzing and attacks from outside, each with the input that showed it."""

from __future__ import annotations

import json
import os
import time

import pytest

from helpers import Client, child_pids, request
from prefork.body import Input, LengthBody
from prefork.http.errors import HTTPError
from prefork.http.parser import Limits, _known_names, parse_head
from prefork.http.response import app_head

LIMITS = Limits()


def verdict(raw: bytes, limits: Limits = LIMITS):
    try:
        parsed = parse_head(raw, limits)
    except HTTPError as exc:
        return int(exc.status[:3])
    return parsed if parsed is None else parsed[0]


def test_leading_empty_lines_are_bounded():  # G1
    started = time.process_time()
    assert verdict(b"\r\n" * 1_000_000) == 400
    assert time.process_time() - started < 0.05
    head = verdict(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")  # a few stay allowed (RFC 9112 §2.2)
    assert head.method == "GET"


@pytest.mark.parametrize("coding", ["chunked\xa0", "\xa0chunked", "chunked\x85", "\x85chunked"])
def test_only_sp_and_htab_are_optional_whitespace_in_transfer_encoding(coding):  # G2
    raw = f"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {coding}\r\n\r\n".encode("latin-1")
    assert verdict(raw) in (400, 501)


@pytest.mark.parametrize("value", ["close\xa0", "\x85close"])
def test_connection_tokens_do_not_strip_non_ows(value):  # G2 (the same audit)
    head = verdict(f"GET / HTTP/1.1\r\nHost: a\r\nConnection: {value}\r\n\r\n".encode("latin-1"))
    assert head.keep_alive  # not a "close" token


def test_a_field_line_without_colon_is_refused_even_when_its_name_is_cached():  # G3
    verdict(b"GET / HTTP/1.1\r\nHost: a\r\nX-Anything: 1\r\n\r\n")
    assert "Host" in _known_names and "X-Anything" in _known_names
    assert verdict(b"GET / HTTP/1.1\r\nHost: a\r\nHost\r\n\r\n") == 400
    assert verdict(b"GET / HTTP/1.1\r\nHost: a\r\nX-Anything\r\n\r\n") == 400


@pytest.mark.parametrize(
    "raw", [b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", b"GET http://:80/x HTTP/1.1\r\nHost: a\r\n\r\n"]
)
def test_an_empty_host_is_refused(raw):  # G5
    assert verdict(raw) == 400


def test_repeated_content_type_is_refused():  # G7
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Type: text/html\r\n\r\n"
    assert verdict(raw) == 400


def test_app_status_without_reason_gets_its_space_and_header_values_lose_leading_ows():  # G20
    head = app_head("200", [("Set-Cookie", "  csrftoken=x"), ("X-A", "\tv")])
    assert head.status_line == b"HTTP/1.1 200 \r\n"
    assert b"Set-Cookie: csrftoken=x\r\n" in head.block and b"X-A: v\r\n" in head.block


class FakeConnection:
    """Enough of a Connection for body reads: hands out the body in 64 KiB pieces."""

    def __init__(self, size: int, newline: bool = True) -> None:
        self.buf = b""
        self.left = size
        self.piece = (b"x" * 1023 + b"\n") * 64 if newline else b"x" * 65536

    def consume(self, n: int) -> None:
        self.buf = self.buf[n:]

    def recv(self, size: int) -> bytes:
        n = min(size, self.left, len(self.piece))
        self.left -= n
        return self.piece[:n]


@pytest.mark.parametrize("how", ["read", "readline"])
def test_body_reads_are_linear(how):  # G10: CPU for 4x the size stays near 4x, not 16x
    def cost(size: int) -> float:
        body = Input(LengthBody(FakeConnection(size, newline=how == "read"), size), None)
        started = time.process_time()
        data = body.read(size) if how == "read" else body.readline()
        assert len(data) == size
        return time.process_time() - started

    small, large = min(cost(4 << 20) for _ in range(3)), min(cost(16 << 20) for _ in range(3))
    assert large < small * 8 + 0.02, (small, large)


def test_path_info_never_comes_from_a_header(fresh_server):  # G14
    raw = b"GET /environ-json HTTP/1.1\r\nHost: t\r\nPATH_INFO: /admin\r\nConnection: close\r\n\r\n"
    env = json.loads(request(fresh_server("--forwarder-headers", "SCRIPT_NAME,PATH_INFO"), raw).body)
    assert env["PATH_INFO"] == "/environ-json"


def test_a_script_name_header_that_does_not_prefix_the_path_is_refused(fresh_server):  # G14
    raw = b"GET /environ-json HTTP/1.1\r\nHost: t\r\nSCRIPT_NAME: /app\r\nConnection: close\r\n\r\n"
    assert request(fresh_server(), raw).status == 400


def test_script_name_from_the_server_environment_is_stripped_from_the_path(fresh_server):  # G15
    server = fresh_server(env={"SCRIPT_NAME": "/app"}, wait=False)
    server.wait_log("Booted worker")
    raw = b"GET /app/environ-json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    env = json.loads(request(server, raw).body)
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/app", "/environ-json")
    outside = request(server, b"GET /elsewhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert outside.status == 400


def test_absolute_form_replaces_http_host_too(fresh_server):  # G5
    raw = b"GET http://example.org:8080/environ-json HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n"
    env = json.loads(request(fresh_server(), raw).body)
    assert (env["HTTP_HOST"], env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.org:8080", "example.org", "8080")


def test_pidfile_is_written_through_an_exclusive_random_temporary_file(tmp_path, fresh_server):  # G17
    pidfile = tmp_path / "prefork.pid"
    target = tmp_path / "victim"
    target.write_text("precious")
    for guess in range(os.getpid(), os.getpid() + 200):  # the old predictable names, planted
        (tmp_path / f"prefork.pid.{guess}.tmp").symlink_to(target)
    server = fresh_server("-p", str(pidfile))
    assert pidfile.read_text().strip() == str(server.pid)
    assert target.read_text() == "precious"


def feed(raw: bytes, sizes: list[int], limits: Limits = LIMITS):
    """Feed ``raw`` in pieces as a connection does (resuming with ``scanned``); the verdict."""
    buf = b""
    scanned = pos = 0
    try:
        for size in [*sizes, len(raw)]:
            buf += raw[pos : pos + size]
            pos += size
            parsed = parse_head(buf, limits, scanned)
            if parsed is not None:
                return parsed[0].method
            scanned = len(buf)
    except HTTPError as exc:
        return int(exc.status[:3])
    return None


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /" + b"a" * (4094 - 15) + b" HTTP/1.1\r\nHost: a\r\n\r\n",  # request line of exactly 4094
        b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * (8190 - 3) + b"\r\n\r\n",  # field line of exactly 8190
        b"GET /" + b"a" * (4094 - 14) + b" HTTP/1.1\r\nHost: a\r\n\r\n",  # one over
        b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * (8190 - 2) + b"\r\n\r\n",
    ],
)
def test_the_verdict_does_not_depend_on_where_tcp_cut_the_bytes(raw):  # G4
    whole = feed(raw, [])
    cuts = [i + 1 for i in range(len(raw)) if raw[i : i + 1] == b"\r"]  # just after each CR
    for cut in cuts:
        assert feed(raw, [cut]) == whole, cut
    assert feed(raw, [1] * 200 + [4000, 1, 1]) == whole


@pytest.mark.parametrize(
    ("size_line", "trailer"), [(b"1" * 16, b"X: " + b"v" * 8187), (b"1" * 17, b"X: " + b"v" * 8188)]
)
def test_chunk_and_trailer_line_verdicts_do_not_depend_on_the_split(size_line, trailer):  # G4
    from prefork.http.framing import ChunkedDecoder

    for body in (size_line + b"\r\n", b"0\r\n" + trailer + b"\r\n\r\n"):

        def run(cut: int | None, body=body):
            decoder = ChunkedDecoder(0, 100, 8190)
            buf = b""
            try:
                for piece in [body] if cut is None else [body[:cut], body[cut:]]:
                    buf += piece
                    _, used = decoder.decode(buf)
                    buf = buf[used:]
            except HTTPError as exc:
                return int(exc.status[:3])
            return "ok"

        whole = run(None)
        assert all(run(i + 1) == whole for i in range(len(body)) if body[i : i + 1] == b"\r"), body[:20]


def test_bare_lf_or_a_proxy_line_is_refused_before_the_head_completes():  # G6
    assert verdict(b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n") == 400
    assert verdict(b"GET / HTTP/1.1\r\nHost: a\rX") == 400
    assert verdict(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\nGET / HT") == 400


def test_a_head_sent_byte_by_byte_costs_linear_time():  # G8
    def cost(fields: int) -> float:
        raw = b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(fields))
        limits = Limits(max_fields=1000)
        started = time.process_time()
        assert feed(raw + b"\r\n", [1] * len(raw), limits) == "GET"
        return time.process_time() - started

    small, large = min(cost(100) for _ in range(2)), min(cost(400) for _ in range(2))
    assert large < small * 8, (small, large)  # quadratic would be 16x


def test_attacker_chosen_names_do_not_grow_the_name_cache():  # G9
    for i in range(50):
        verdict(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X" * 8000 + b"%d: v\r\n\r\n" % i)
    assert max(len(name) for name in _known_names) <= 64


def test_descriptor_exhaustion_backs_off_and_logs_once(fresh_server):  # G11
    import resource
    import socket as socketlib

    from helpers import get

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    server = fresh_server("--keep-alive", "30", wait=False, preexec=low_limit)
    server.wait_log("Booted worker")
    from helpers import wait_until_serving

    wait_until_serving(server)
    keeper = Client(server.connect())
    keeper.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    assert keeper.read_response().status == 200
    crowd = [socketlib.create_connection(("127.0.0.1", server.port)) for _ in range(150)]
    try:
        started = time.monotonic()
        time.sleep(2)
        keeper.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")  # existing connections keep being served
        assert keeper.read_response().status == 200
        log = server.log()
        assert 1 <= log.count("accept() failed") <= 2, log[-2000:]
        assert "Too many open files" in log
        assert time.monotonic() - started < 10
    finally:
        keeper.sock.close()
        for sock in crowd:
            sock.close()
    assert get(server, "/hello").status == 200  # descriptors back: accepting again


def test_a_full_disk_under_the_access_log_fails_no_request(fresh_server):  # G12
    from helpers import get

    server = fresh_server("--access-logfile", "/dev/full")
    for _ in range(20):
        assert get(server, "/hello").status == 200
    log = server.log()
    assert log.count("Access log write failed") == 1 and "Booted worker" in log
    assert log.count("Booted worker") == 1  # no worker died


def test_an_unwritable_log_path_stops_the_start_naming_it(tmp_path):  # G16
    from helpers import run_until_exit

    for option in ("--access-logfile", "--error-logfile"):
        path = str(tmp_path / "missing-dir" / "x.log")
        code, log = run_until_exit(tmp_path, option, path)
        assert code == 1 and path in log, log


@pytest.mark.needs_root  # drops to nobody
def test_the_parent_death_signal_survives_dropping_privileges(fresh_server):  # G18
    from helpers import Client

    server = fresh_server("--preload", "--user", "nobody", "--group", "nogroup")
    with Client(server.connect(timeout=10)) as client:
        client.send(b"GET /sleep?1.5 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)  # the request runs (it lasts 1.5 s)
        os.kill(server.pid, 9)  # the master dies: the worker must get SIGTERM from the kernel
        response = client.read_response()
    assert response.body == b"slept" and response.header("Connection") == "close"


@pytest.mark.parametrize("claimed", ["unknown", "<script>", "203.0.113.7, unknown", "_hidden"])
def test_forwarded_for_values_that_are_not_addresses_never_become_remote_addr(claimed):  # G20
    from prefork.proxy import ProxyPolicy

    policy = ProxyPolicy("127.0.0.1", {}, True)
    environ = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5", "HTTP_X_FORWARDED_FOR": claimed}
    policy.apply(environ)
    assert environ["REMOTE_ADDR"] == "127.0.0.1"
    claimed = claimed.rpartition(",")[2].strip()
    environ = {"REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "5", "HTTP_FORWARDED": f'for="{claimed}"'}
    policy.apply(environ)
    assert environ["REMOTE_ADDR"] == "127.0.0.1"


def test_an_aborted_download_is_logged_with_the_bytes_sent(fresh_server, tmp_path):  # G19
    import socket as socketlib

    access = tmp_path / "access.log"
    server = fresh_server("--access-logfile", str(access), "--access-logformat", "%(r)s %(s)s %(B)s")
    sock = socketlib.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"GET /bytes?500000000 HTTP/1.1\r\nHost: t\r\n\r\n")
    sock.settimeout(10)
    received = b""
    while b"\r\n\r\n" not in received or received.endswith(b"\r\n\r\n"):  # some body, not the head alone
        chunk = sock.recv(65536)
        assert chunk
        received += chunk
    sock.setsockopt(socketlib.SOL_SOCKET, socketlib.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # reset mid-response

    def logged():
        return [line for line in access.read_text().splitlines() if "/bytes" in line] if access.exists() else []

    deadline = time.monotonic() + 10
    while not logged() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = logged()[0]
    assert line.startswith("GET /bytes?500000000 HTTP/1.1 200 ")
    assert 0 < int(line.rsplit(" ", 1)[1]) < 500000000


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /no-read HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 1000,
        b"POST /no-read HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n",
    ],
)
def test_a_response_that_ends_in_a_close_says_so_in_its_head(fresh_server, raw):  # G19
    response = request(fresh_server(), raw)
    assert response.status == 200 and response.header("Connection") == "close"


def test_incomplete_heads_share_a_memory_budget(fresh_server):  # G13
    import socket as socketlib

    from prefork.workers.cycle import HEAD_MEMORY_BUDGET

    server = fresh_server("--limit-request-fields", "1000", "--header-timeout", "30", "--worker-connections", "100")
    field = b"X-Filler: " + b"v" * 8000 + b"\r\n"
    per_client = 6 << 20  # 6 MiB of head each, never finished
    clients = []
    try:
        for _ in range(HEAD_MEMORY_BUDGET // per_client + 4):
            sock = socketlib.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n" + field * (per_client // len(field)))
            clients.append(sock)
        refused: set[int] = set()
        deadline = time.monotonic() + 10
        while len(refused) < 4 and time.monotonic() < deadline:  # 9 x 6 MiB against a 32 MiB budget
            for number, sock in enumerate(clients):
                if number in refused:
                    continue
                sock.settimeout(0.05)
                try:
                    if sock.recv(100).startswith(b"HTTP/1.1 431"):
                        refused.add(number)
                except (TimeoutError, ConnectionResetError):
                    pass
        assert len(refused) >= 4, refused
        worker = sorted(child_pids(server.pid))[0]
        with open(f"/proc/{worker}/status") as f:
            rss_kib = int(next(line for line in f if line.startswith("VmRSS:")).split()[1])
        assert rss_kib < (HEAD_MEMORY_BUDGET >> 10) * 2 + 60_000, rss_kib
    finally:
        for sock in clients:
            sock.close()


def test_response_heads_echoing_client_input_are_not_cached():  # G9
    from prefork.http import response

    response._app_heads.clear()
    for i in range(50):
        app_head("302 Found", [("Location", "/" + "x" * 8000 + str(i))])
    assert not response._app_heads
    app_head("200 OK", [("Content-Type", "text/plain")])
    assert len(response._app_heads) == 1
