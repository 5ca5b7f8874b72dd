"""Issue I, with real processes: the master's /metrics, /status, /livez, /readyz and `prefork status/top`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading

import pytest

from helpers import ROOT, background_get, child_pids, eventually, free_port, get


def scrape(port: int, path: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, text, re.M)
    assert match, (name, labels, text[:3000])
    return float(match.group(1))


@pytest.fixture
def metered(fresh_server):
    def start(*args, **kwargs):
        port = free_port()
        server = fresh_server("--metrics-bind", f"127.0.0.1:{port}", *args, **kwargs)
        server.extra["metrics"] = port
        return server

    return start


def published(server, predicate):
    """Scrape until the workers' published counts satisfy ``predicate`` (they publish twice a second)."""
    result = {}

    def ready():
        result["text"] = scrape(server.extra["metrics"], "/metrics")[1]
        return predicate(result["text"])

    eventually(ready, 10, "the counts published")
    return result["text"]


def test_metrics_after_n_requests(metered):
    server = metered("-w", "2")
    for _ in range(7):
        assert get(server, "/hello").status == 200
    get(server, "/no-such-route")
    before_probe = 1  # wait_until_serving's probe is a GET /hello too
    text = published(server, lambda t: 'code="404"' in t and f'code="200"}} {7 + before_probe}' in t)
    assert metric(text, "prefork_requests_total", 'method="GET",code="404"') == 1
    assert metric(text, "prefork_request_duration_seconds_count") == 7 + before_probe + 1
    assert metric(text, "prefork_request_duration_seconds_bucket", 'le="+Inf"') == 7 + before_probe + 1
    assert metric(text, "prefork_workers", 'state="ready"') == 2
    assert metric(text, "prefork_listen_queue_max", f'listener="127.0.0.1:{server.port}"') > 0
    assert metric(text, "process_open_fds", f'process="master",pid="{server.pid}"') > 0
    assert "# TYPE prefork_request_duration_seconds histogram" in text


def test_counters_survive_a_killed_worker_and_a_reload_and_restarts_have_causes(metered):
    server = metered("-w", "1", "--max-requests", "5")
    for _ in range(4):
        get(server, "/hello")
    published(server, lambda t: 'code="200"} 5' in t)  # the probe + 4
    eventually(lambda: "recycled after" in server.log(), 10, "the max-requests recycle")
    get(server, "/hello")
    published(server, lambda t: 'code="200"} 6' in t)  # counts reach the master twice a second
    worker = sorted(child_pids(server.pid))[0]
    os.kill(worker, signal.SIGKILL)
    eventually(lambda: "SIGKILL" in server.log(), 10, "the kill noticed")
    server.signal(signal.SIGHUP)
    server.wait_log("Reload complete")
    get(server, "/hello")
    text = published(server, lambda t: 'cause="reload"} 1' in t and 'code="200"} 7' in t)
    assert metric(text, "prefork_worker_restarts_total", 'cause="max-requests"') == 1
    assert metric(text, "prefork_worker_restarts_total", 'cause="oom-kill"') == 1  # SIGKILL from outside
    assert metric(text, "prefork_requests_total", 'method="GET",code="200"') == 7  # none lost to the kill


def test_status_shows_a_hanging_request_with_its_age(metered):
    server = metered("-w", "1", "-k", "threaded", "--threads", "2")
    pending = background_get(server, "/sleep?3")
    status = {}

    def hanging():
        status.update(json.loads(scrape(server.extra["metrics"], "/status")[1]))
        return any(w["running"] for w in status["workers"])

    eventually(hanging, 10, "the running request in /status")
    running = next(w for w in status["workers"] if w["running"])["running"][0]
    assert running["request"] == "GET /sleep?3" and 0 <= running["age"] < 3
    assert status["master"]["pid"] == server.pid and status["workers"][0]["state"] == "busy"
    pending["thread"].join(10)


def test_the_master_answers_while_every_worker_is_stuck(metered):
    server = metered("-w", "1")
    pending = background_get(server, "/sleep?3")
    eventually(
        lambda: "prefork_requests_in_progress 1" in scrape(server.extra["metrics"], "/metrics")[1],
        5,
        "the stuck request seen by the master",
    )
    assert scrape(server.extra["metrics"], "/livez") == (200, "ok\n")
    assert pending["thread"].is_alive()  # the only worker is still stuck: the master answered alone
    pending["thread"].join(10)


def test_readyz_is_503_during_the_shutdown_delay_while_requests_are_served(metered):
    server = metered("--shutdown-delay", "3")
    port = server.extra["metrics"]
    assert scrape(port, "/readyz")[0] == 200
    server.signal(signal.SIGTERM)
    eventually(lambda: scrape(port, "/readyz")[0] == 503, 5, "readyz 503")
    assert get(server, "/hello").status == 200  # still serving
    assert scrape(port, "/livez")[0] == 200


def test_prefork_status_and_top(metered):
    server = metered("-w", "2")
    address = f"127.0.0.1:{server.extra['metrics']}"
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run(
        [sys.executable, "-m", "prefork", "status", address], capture_output=True, text=True, timeout=30, env=env
    )
    assert out.returncode == 0, out.stderr
    assert f"master {server.pid}" in out.stdout and out.stdout.count(" ready    ") == 2  # one row per worker
    stop = threading.Event()

    def load():
        while not stop.is_set():
            get(server, "/hello")

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "prefork", "top", address, "--interval", "0.6", "--count", "2"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
    finally:
        stop.set()
        thread.join(5)
    assert out.returncode == 0 and "\x1b[H\x1b[2J" in out.stdout and "req/s" in out.stdout and "p99" in out.stdout


def test_prometheus_multiproc_dir_is_managed_by_the_master(metered, tmp_path):
    pytest.importorskip("prometheus_client")
    directory = tmp_path / "prom"
    directory.mkdir()
    (directory / "counter_99999.db").write_bytes(b"stale")
    server = metered("-w", "2", app="promapp:app", env={"PROMETHEUS_MULTIPROC_DIR": str(directory)})
    assert not (directory / "counter_99999.db").exists()  # emptied at start
    for _ in range(5):
        get(server, "/")
    body = get(server, "/app-metrics").body.decode()
    assert "app_hits_total" in body
    worker = sorted(child_pids(server.pid))[0]
    os.kill(worker, signal.SIGKILL)
    eventually(lambda: "SIGKILL" in server.log(), 10, "the kill noticed")
    body = get(server, "/app-metrics").body.decode()  # the dead worker's counts still add up, no error
    assert "app_hits_total" in body and "Traceback" not in server.log()
