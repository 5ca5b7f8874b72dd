"""Issue H: gunicorn set-ups switch to prefork by changing one word. Each case is a config file or a
command line of the kind found in real projects, started for real and answering a request."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import APPS, ROOT, Client, eventually, free_port, get, request, start_server, wait_until_serving

DROPIN = Path(__file__).parent / "dropin"

CONFIG_FILES = {
    "helpers, imports, typos and pre-19 names": (
        "import multiprocessing\nimport os\n"
        "log_dir = '/var/log/myapp'\ninstall_dir = os.path.dirname(__file__)\nhost = '0.0.0.0'\nport = 8000\n"
        "cores = multiprocessing.cpu_count()\nworkers = 2\nthread = 4\nacceslogformat = '%(h)s'\n"
        "logfile = '-'\ncommand = '/usr/bin/gunicorn'\n",
        ["unknown setting 'thread' ignored; did you mean 'threads'", "'acceslogformat'", "'log_dir'", "'logfile'"],
    ),
    "settings at their off value": (
        "daemon = False\nspew = False\nreload = False\nsendfile = True\nheader_map = 'drop'\n",
        [],
    ),
    "worker_tmp_dir and friends": (
        "worker_tmp_dir = '/dev/shm'\nreuse_port = True\ninitgroups = True\ncontrol_socket = '/tmp/x'\n"
        "control_socket_disable = True\n",
        ["worker_tmp_dir has no effect"],
    ),
    "a worker_class overridden on the command line": ("worker_class = 'gevent'\nworker_connections = 50\n", []),
    "logconfig_dict holding a stream": (
        "import sys\nlogconfig_dict = {'version': 1, 'handlers': {'out': {'class': 'logging.StreamHandler', "
        "'stream': sys.stdout}}, 'loggers': {'myapp': {'handlers': ['out']}}}\n",
        [],
    ),
    "hooks and a helper function": (
        "def when_ready(server):\n    server.log.info('ready hook ran')\n"
        "def helper():\n    return 1\nworkers = helper() + 1\n",
        ["ready hook ran"],
    ),
}


@pytest.mark.parametrize("name", list(CONFIG_FILES))
def test_gunicorn_config_files_start_and_serve(fresh_server, tmp_path, name):
    text, expected_in_log = CONFIG_FILES[name]
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(text)
    args = ["-c", str(config)]
    if "overridden" in name:
        args += ["-k", "sync"]
    server = fresh_server(*args)
    assert get(server, "/hello").status == 200
    log = server.log()
    for expected in expected_in_log:
        assert expected in log, (expected, log)


def test_the_config_file_directory_is_on_sys_path(fresh_server, tmp_path):
    (tmp_path / "sharedsettings.py").write_text("WORKERS = 2\n")
    config = tmp_path / "gunicorn.conf.py"
    config.write_text("from sharedsettings import WORKERS\nworkers = WORKERS\n")
    server = fresh_server("-c", str(config))
    server.wait_log("Booted worker 1")


def test_config_from_a_python_module(fresh_server, tmp_path):
    server = fresh_server("-c", "python:dropin_conf", env={"PYTHONPATH": f"{DROPIN}:{APPS}:{ROOT}"})
    assert get(server, "/hello").status == 200
    assert "--max-requests 1000 from the module" in server.log()


@pytest.mark.parametrize(
    "flags",
    [
        ["--worker-tmp-dir", "/dev/shm"],
        ["--reuse-port", "--no-sendfile", "--initgroups", "-R"],
        ["--proxy-allow-from", "127.0.0.1"],
        ["--disable-redirect-access-to-syslog", "--suppress-ragged-eofs"],
    ],
)
def test_accepted_gunicorn_flags(fresh_server, flags):
    assert get(fresh_server(*flags), "/hello").status == 200


def test_refused_flags_fail_with_the_reason():
    out = subprocess.run(
        [sys.executable, "-m", "prefork", "--strip-header-spaces", "testapp:app"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=APPS,
    )
    assert out.returncode == 1 and "smuggling" in out.stderr


def test_version_flag():
    out = subprocess.run([sys.executable, "-m", "prefork", "--version"], capture_output=True, text=True, timeout=30)
    assert out.stdout.startswith("prefork ")


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
def test_unspecified_ipv6_address_accepts_ipv4_too(tmp_path):
    port = free_port()
    try:
        server = start_server(tmp_path, bind=f"[::]:{port}", wait=False)
    except OSError:
        pytest.skip("cannot bind [::]")
    try:
        server.port = port
        wait_until_serving(server)  # over 127.0.0.1
        with socket.create_connection(("::1", port), timeout=5) as six:
            six.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert six.recv(20).startswith(b"HTTP/1.1 200")
    finally:
        server.stop()


def test_unix_socket_mode(fresh_server, tmp_path):
    path = tmp_path / "app.sock"
    server = fresh_server(bind=f"unix:{path}")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o777  # umask 0 by default, as gunicorn
    server.stop()
    path2 = tmp_path / "app2.sock"
    fresh_server("-m", "007", bind=f"unix:{path2}")
    assert stat.S_IMODE(os.stat(path2).st_mode) == 0o770


@pytest.mark.needs_root
def test_unix_socket_owned_by_user_and_group(fresh_server, tmp_path):
    import grp
    import pwd

    path = tmp_path / "app3.sock"
    fresh_server("--preload", "--user", "nobody", "--group", "nogroup", bind=f"unix:{path}")
    assert os.stat(path).st_uid == pwd.getpwnam("nobody").pw_uid
    assert os.stat(path).st_gid == grp.getgrnam("nogroup").gr_gid


def test_unix_double_slash_is_a_relative_path(tmp_path):
    server = start_server(tmp_path, bind="unix://dropin-rel.sock", wait=False)
    try:
        server.unix_path = os.path.join(APPS, "dropin-rel.sock")
        wait_until_serving(server)
    finally:
        server.stop()
        if os.path.exists(os.path.join(APPS, "dropin-rel.sock")):
            os.unlink(os.path.join(APPS, "dropin-rel.sock"))


def test_fd_bind(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    os.set_inheritable(listener.fileno(), True)
    log_path = tmp_path / "fd.log"
    env = dict(os.environ, PYTHONPATH=APPS + os.pathsep + ROOT)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefork", "-b", f"fd://{listener.fileno()}", "testapp:app"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=APPS,
            env=env,
            pass_fds=[listener.fileno()],
            start_new_session=True,
        )
    listener.close()
    try:
        from helpers import Server

        wait_until_serving(Server(proc, port, str(log_path)))
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(10)


def test_statsd_metrics_with_gunicorn_names(fresh_server):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    port = receiver.getsockname()[1]
    try:
        server = fresh_server(
            "--statsd-host", f"127.0.0.1:{port}", "--statsd-prefix", "shop", "--dogstatsd-tags", "env:test"
        )
        get(server, "/hello")
        get(server, "/no-such-route")
        lines: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            any("status.404" in line for line in lines) and any("workers" in line for line in lines)
        ):
            lines.append(receiver.recv(1000).decode())
    finally:
        receiver.close()
    text = "\n".join(lines)
    for expected in (
        "shop.gunicorn.requests:1|c|#env:test",
        "shop.gunicorn.request.status.200:1|c",
        "shop.gunicorn.request.status.404:1|c",
        "shop.gunicorn.workers:1|g",
        "shop.gunicorn.request.duration:",
    ):
        assert expected in text, (expected, text)


def test_reload_serves_new_code_when_a_file_changes(fresh_server, tmp_path):
    module = tmp_path / "reloadme.py"
    module.write_text("def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'v1']\n")
    server = fresh_server("--reload", "--pythonpath", str(tmp_path), app="reloadme:app")
    assert get(server, "/").body == b"v1"
    time.sleep(1.1)  # a new modification time
    module.write_text("def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'v2']\n")
    eventually(lambda: get(server, "/").body == b"v2", 15, "the new code served")


def test_paste_application(fresh_server):
    server = fresh_server("--paste", str(DROPIN / "pasteapp.ini"), "--paste-global", "who=world", app="")
    assert get(server, "/").body == b"hello from paste world"


def test_logger_class_is_refused_clearly(tmp_path):
    from prefork.config import ConfigError, load

    config = tmp_path / "c.py"
    config.write_text("class MyLogger:\n    pass\nlogger_class = MyLogger\n")
    with pytest.raises(ConfigError, match="logger_class"):
        load(["-c", str(config), "app:app"], {})


def test_daemon_detaches_and_writes_its_pidfile(tmp_path):
    pidfile = tmp_path / "d.pid"
    port = free_port()
    env = dict(os.environ, PYTHONPATH=APPS + os.pathsep + ROOT)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefork",
            "-D",
            "-p",
            str(pidfile),
            "-b",
            f"127.0.0.1:{port}",
            "--error-logfile",
            str(tmp_path / "err.log"),
            "testapp:app",
        ],
        cwd=APPS,
        env=env,
        timeout=30,
        capture_output=True,
    )
    assert out.returncode == 0  # the launcher returns at once
    eventually(pidfile.exists, 15, "the daemon's pidfile")
    pid = int(pidfile.read_text())
    try:
        assert os.getsid(pid) != os.getsid(0)  # a session of its own, detached from ours
        with Client(socket.create_connection(("127.0.0.1", port), timeout=10)) as client:
            client.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            assert client.read_response().status == 200
    finally:
        os.kill(pid, 15)
        eventually(lambda: not os.path.exists(f"/proc/{pid}"), 15, "the daemon to stop")


def test_environ_keys_libraries_look_for(fresh_server):
    server = fresh_server(app="hinted:app", wait=False)
    server.wait_log("Booted worker")
    raw = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    with server.connect() as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n")
    assert data.endswith(b"socket True")


def test_log_details_as_gunicorn(fresh_server, tmp_path):
    access = tmp_path / "access.log"
    path = tmp_path / "u.sock"
    server = fresh_server(
        "--access-logfile",
        str(access),
        "--access-logformat",
        "[%(h)s] [%({EMPTY_VAR}e)s]",
        "--log-level",
        "debug",
        bind=f"unix:{path}",
        env={"EMPTY_VAR": ""},
    )
    raw = b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    request(server, raw)
    eventually(lambda: access.exists() and "[" in access.read_text(), 10, "an access line")
    assert access.read_text().splitlines()[-1] == "[] [-]"
    assert "[DEBUG] GET /hello" in server.log()


def test_forwarded_json(fresh_server):  # the environ as the app sees it, through the drop-in defaults
    env = json.loads(get(fresh_server(), "/environ-json").body)
    assert env["SCRIPT_NAME"] == "" and env["wsgi.url_scheme"] == "http"
