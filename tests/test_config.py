"""The settings registry: one declaration feeds the CLI, the environment, config files and the docs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import APPS, ROOT, get
from prefork.config import ConfigError, describe, load, load_file
from prefork.docs import settings_markdown
from test_lifecycle import wait_until
from test_process import child_pids


def settings_from(argv, env=None, cwd=None):
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        return load([*argv, "app:app"], env or {})[0]
    finally:
        os.chdir(old)


def test_flag_env_and_file_give_the_same_value(tmp_path):
    config = tmp_path / "c.py"
    config.write_text("workers = 3\nkeepalive = 7\nbind = ['127.0.0.1:9000', 'unix:/tmp/x.sock']\n")
    from_file = settings_from(["-c", str(config)])
    from_env = settings_from([], {"PREFORK_WORKERS": "3", "PREFORK_KEEPALIVE": "7",
                                  "PREFORK_BIND": "127.0.0.1:9000 unix:/tmp/x.sock"})
    from_cli = settings_from(["-w", "3", "--keep-alive", "7", "-b", "127.0.0.1:9000", "-b", "unix:/tmp/x.sock"])
    for settings in (from_file, from_env, from_cli):
        assert (settings.workers, settings.keepalive, settings.bind) == (3, 7, ["127.0.0.1:9000", "unix:/tmp/x.sock"])


def test_precedence_default_file_env_cli(tmp_path):
    config = tmp_path / "c.py"
    config.write_text("workers = 2\ntimeout = 40\ngraceful_timeout = 5\n")
    settings = settings_from(["-c", str(config), "-t", "50"], {"PREFORK_TIMEOUT": "45", "PREFORK_GRACEFUL_TIMEOUT": "6"})
    assert (settings.workers, settings.timeout, settings.graceful_timeout, settings.keepalive) == (2, 50, 6, 2)
    assert settings.sources["workers"] == f"file {config}"
    assert settings.sources["graceful_timeout"] == "env"
    assert settings.sources["timeout"] == "cli"
    text = describe(settings)
    assert "# cli" in text and "# default" in text and f"# file {config}" in text


def test_cmd_args_environment_and_platform_variables():
    settings = settings_from([], {"PREFORK_CMD_ARGS": "-w 5 --keep-alive 9", "PORT": "8123"})
    assert (settings.workers, settings.keepalive, settings.bind) == (5, 9, ["0.0.0.0:8123"])
    assert settings_from([], {"WEB_CONCURRENCY": "4"}).workers == 4
    assert settings_from(["-w", "2"], {"WEB_CONCURRENCY": "4"}).workers == 2


def test_default_config_file_in_current_directory(tmp_path):
    (tmp_path / "prefork.conf.py").write_text("workers = 6\n")
    assert settings_from([], cwd=tmp_path).workers == 6


def test_unknown_setting_suggests_the_right_name(tmp_path):
    config = tmp_path / "c.py"
    config.write_text("wokers = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'wokers'; did you mean 'workers'"):
        load_file(str(config))


def test_known_but_unsupported_gunicorn_setting_is_refused(tmp_path):
    config = tmp_path / "c.py"
    config.write_text("daemon = True\n")
    with pytest.raises(ConfigError, match="'daemon' is not supported"):
        load_file(str(config))


def test_invalid_value_names_the_setting(tmp_path):
    config = tmp_path / "c.py"
    config.write_text("workers = 0\n")
    with pytest.raises(ConfigError, match="invalid value for 'workers'"):
        load_file(str(config))
    with pytest.raises(ConfigError, match="PREFORK_TIMEOUT"):
        load(["app:app"], {"PREFORK_TIMEOUT": "soon"})


def test_gunicorn_style_config_file_loads(tmp_path):
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(
        "import multiprocessing\n"
        "from os import environ\n"
        "bind = '127.0.0.1:8000'\n"  # a string, as gunicorn allows
        "workers = multiprocessing.cpu_count() * 2 + 1\n"
        "worker_class = 'gthread'\nthreads = 4\n"
        "timeout = 60\ngraceful_timeout = 20\nkeepalive = 5\n"
        "max_requests = 1000\nmax_requests_jitter = 50\n"
        "accesslog = '-'\nerrorlog = '-'\nloglevel = 'warning'\n"
        "access_log_format = '%(h)s %(r)s %(s)s'\n"
        "limit_request_line = 8190\nlimit_request_fields = 50\nlimit_request_field_size = 4096\n"
        "preload_app = True\nproc_name = 'shop'\nwsgi_app = 'shop.wsgi:application'\n"
        "def helper():\n    return 1\n"
    )
    settings, _ = load(["-c", str(config)], {})
    assert settings.bind == ["127.0.0.1:8000"] and settings.worker_class == "threaded"
    assert settings.app_uri == "shop.wsgi:application" and settings.preload_app is True
    assert settings.loglevel == "warning" and settings.max_requests_jitter == 50


def test_settings_doc_is_generated_from_the_registry():
    committed = (Path(ROOT) / "docs" / "settings.md").read_text()
    assert committed == settings_markdown(), "run: python -m prefork.docs > docs/settings.md"


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "prefork", *args], capture_output=True, text=True, timeout=60,
                          cwd=APPS, env=dict(os.environ, PYTHONPATH=APPS + os.pathsep + ROOT, **(env or {})))


def test_check_config_exit_codes(tmp_path):
    assert run_cli("--check-config", "-b", "127.0.0.1:0", "testapp:app").returncode == 0
    assert run_cli("--check-config", "-b", "127.0.0.1:0", "no_such_module:app").returncode == 3
    assert run_cli("--check-config", "--user", "no-such-user-xyz", "testapp:app").returncode == 1
    bad = tmp_path / "bad.py"
    bad.write_text("workerz = 2\n")
    out = run_cli("-c", str(bad), "testapp:app")
    assert out.returncode == 1 and "did you mean 'workers'" in out.stderr


def test_print_config_shows_sources():
    out = run_cli("--print-config", "-w", "3", "testapp:app", env={"PREFORK_KEEPALIVE": "4"})
    assert out.returncode == 0
    assert any(line.startswith("workers") and line.endswith("# cli") for line in out.stdout.splitlines())
    assert any(line.startswith("keepalive") and line.endswith("# env") for line in out.stdout.splitlines())


def test_hup_rereads_the_config_file(fresh_server, tmp_path):
    config = tmp_path / "prefork.conf.py"
    config.write_text("workers = 1\n")
    server = fresh_server("-c", str(config))
    assert len(child_pids(server.pid)) == 1
    config.write_text("workers = 3\nbacklog = 10\n")
    server.signal(signal.SIGHUP)
    wait_until(lambda: len(child_pids(server.pid)) == 3, what="3 workers after the reload")
    assert "Setting backlog changed: it takes effect on restart" in server.log()
    assert get(server, "/hello").status == 200
