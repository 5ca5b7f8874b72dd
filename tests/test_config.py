"""The settings registry: one declaration feeds the CLI, the environment, config files and the docs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from helpers import ROOT, child_pids, eventually, get, run_cli
from prefork.config import ConfigError, describe, load, load_file
from prefork.docs import settings_markdown, with_signals_table


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
    from_env = settings_from(
        [], {"PREFORK_WORKERS": "3", "PREFORK_KEEPALIVE": "7", "PREFORK_BIND": "127.0.0.1:9000 unix:/tmp/x.sock"}
    )
    from_cli = settings_from(["-w", "3", "--keep-alive", "7", "-b", "127.0.0.1:9000", "-b", "unix:/tmp/x.sock"])
    for settings in (from_file, from_env, from_cli):
        assert (settings.workers, settings.keepalive, settings.bind) == (3, 7, ["127.0.0.1:9000", "unix:/tmp/x.sock"])


def test_precedence_default_file_env_cli(tmp_path):
    config = tmp_path / "c.py"
    config.write_text("workers = 2\ntimeout = 40\ngraceful_timeout = 5\n")
    settings = settings_from(
        ["-c", str(config), "-t", "50"], {"PREFORK_TIMEOUT": "45", "PREFORK_GRACEFUL_TIMEOUT": "6"}
    )
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


def test_unknown_setting_is_a_warning_with_a_suggestion_and_an_error_when_strict(tmp_path):
    config = tmp_path / "c.py"
    config.write_text("wokers = 3\nlog_dir = '/var/log'\nworkers = 2\n")
    warnings: list[str] = []
    values, unknown = load_file(str(config), warnings)
    assert values == {"workers": 2}
    assert any("unknown setting 'wokers' ignored; did you mean 'workers'" in u for u in unknown)
    assert any("'log_dir'" in u for u in unknown)
    settings, meta = load(["-c", str(config), "app:app"], {})
    assert settings.workers == 2 and len(meta.warnings) == 2
    with pytest.raises(ConfigError, match="wokers"):
        load(["-c", str(config), "--strict-config", "app:app"], {})


def test_known_but_unsupported_gunicorn_setting_is_refused_unless_it_asks_for_nothing(tmp_path):
    config = tmp_path / "c.py"
    config.write_text("spew = True\n")
    with pytest.raises(ConfigError, match="'spew' is not supported"):
        load_file(str(config), [])
    config.write_text("spew = False\nheader_map = 'drop'\nlogger_class = 'gunicorn.glogging.Logger'\n")
    assert load_file(str(config), []) == ({}, [])


def test_a_refused_flag_fails_with_the_reason():
    with pytest.raises(ConfigError, match="'permit_obsolete_folding' is not supported by prefork: obs-fold"):
        load(["--permit-obsolete-folding", "app:app"], {})


def test_invalid_value_names_the_setting(tmp_path):
    config = tmp_path / "c.py"
    config.write_text("workers = 0\n")
    with pytest.raises(ConfigError, match="invalid value for 'workers'"):
        load_file(str(config), [])
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


def test_signals_doc_table_is_generated_from_the_signal_table():
    committed = (Path(ROOT) / "docs" / "signals.md").read_text()
    assert committed == with_signals_table(committed), "run: python -m prefork.docs --signals docs/signals.md"


def test_the_master_handles_every_signal_of_its_table():
    import signal

    from prefork.arbiter import Arbiter
    from prefork.signal_table import HANDLED_SIGNALS

    for signum in HANDLED_SIGNALS:
        assert callable(getattr(Arbiter, f"handle_{signal.Signals(signum).name[3:].lower()}"))


def test_check_config_exit_codes(tmp_path):
    assert run_cli("--check-config", "-b", "127.0.0.1:0", "testapp:app").returncode == 0
    assert run_cli("--check-config", "-b", "127.0.0.1:0", "no_such_module:app").returncode == 3
    assert run_cli("--check-config", "--user", "no-such-user-xyz", "testapp:app").returncode == 1
    bad = tmp_path / "bad.py"
    bad.write_text("workerz = 2\n")
    out = run_cli("-c", str(bad), "--check-config", "-b", "127.0.0.1:0", "testapp:app")
    assert out.returncode == 0 and "did you mean 'workers'" in out.stderr  # a warning
    out = run_cli("-c", str(bad), "--check-config", "--strict-config", "-b", "127.0.0.1:0", "testapp:app")
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
    eventually(lambda: len(child_pids(server.pid)) == 3, what="3 workers after the reload")
    assert "Setting backlog changed: it takes effect on restart" in server.log()
    assert get(server, "/hello").status == 200


HOOKS_CONFIG = """
import os
_LOG = os.environ["PREFORK_TEST_HOOK_LOG"]


def _note(*words):
    with open(_LOG, "a") as f:
        f.write(" ".join(str(w) for w in words) + "\\n")


def on_starting(server): _note("on_starting", server.cfg.workers)
def when_ready(server): _note("when_ready", server.pid)
def on_reload(server): _note("on_reload")
def pre_fork(server, worker): _note("pre_fork", worker.age)
def post_fork(server, worker): _note("post_fork", worker.pid == os.getpid())
def post_worker_init(worker): _note("post_worker_init", worker.pid == os.getpid())
def pre_request(worker, req): _note("pre_request", req.method, req.path)
def post_request(worker, req, environ, resp): _note("post_request", req.uri, resp.status)
def child_exit(server, worker): _note("child_exit")
def worker_exit(server, worker): _note("worker_exit")
def nworkers_changed(server, new_value, old_value): _note("nworkers_changed", old_value, new_value)
def on_exit(server): _note("on_exit")
def worker_int(worker): raise RuntimeError("a broken hook")
"""


def test_gunicorn_hooks_fire_and_a_failing_hook_is_harmless(fresh_server, tmp_path):
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(HOOKS_CONFIG)
    hook_log = tmp_path / "hooks.log"
    server = fresh_server("-c", str(config), env={"PREFORK_TEST_HOOK_LOG": str(hook_log)})
    assert get(server, "/hello?x=1").status == 200
    server.signal(signal.SIGTTIN)
    eventually(lambda: len(child_pids(server.pid)) == 2, what="2 workers")
    old = child_pids(server.pid)
    server.signal(signal.SIGHUP)
    # HUP re-reads the settings: the worker count returns to the configured 1, as in gunicorn
    eventually(
        lambda: len(child_pids(server.pid)) == 1 and not child_pids(server.pid) & old, what="the new generation alone"
    )
    worker = sorted(child_pids(server.pid))[0]
    os.kill(worker, signal.SIGINT)  # its worker_int hook raises: logged, nothing else happens
    server.wait_log("Hook worker_int raised")
    server.signal(signal.SIGTERM)
    server.proc.wait(15)
    notes = hook_log.read_text().splitlines()
    names = [line.split()[0] for line in notes]
    assert names[:2] == ["on_starting", "when_ready"] and names[-1] == "on_exit"
    for expected in (
        "pre_fork 0",
        "post_fork True",
        "post_worker_init True",
        "pre_request GET /hello",
        "post_request /hello?x=1 200 OK",
        "nworkers_changed 1 2",
        "on_reload",
        "nworkers_changed 2 1",
    ):
        assert expected in notes, (expected, notes)
    assert {"child_exit", "worker_exit"} <= set(names)
    assert "Traceback" in server.log() and "a broken hook" in server.log()


def test_example_config_file_loads():
    values, unknown = load_file(str(Path(ROOT) / "conf" / "prefork.conf.py"), [])
    assert not unknown
    assert values["wsgi_app"] == "examples.hello:app" and callable(values["post_fork"])


def test_ignored_gunicorn_settings_are_accepted_with_a_warning(tmp_path):
    config = tmp_path / "c.py"
    config.write_text("sendfile = True\nreuse_port = True\nworker_tmp_dir = '/dev/shm'\nworkers = 2\n")
    warnings: list[str] = []
    assert load_file(str(config), warnings) == ({"workers": 2}, [])
    assert any("worker_tmp_dir has no effect" in w for w in warnings)


def test_raw_env_and_pythonpath(fresh_server, tmp_path):
    extra = tmp_path / "extra_path"
    extra.mkdir()
    (extra / "pathapp.py").write_text(
        "import os\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [os.environ['GREETING'].encode()]\n"
    )
    server = fresh_server("-e", "GREETING=hello from -e", "--pythonpath", str(extra), app="pathapp:app")
    assert get(server, "/").body == b"hello from -e"


def test_settings_annotations_cover_the_registry_and_agree_with_the_defaults():
    """Settings is typed by hand-kept annotations (for mypy); they must not drift from the registry."""
    import types
    import typing

    from prefork.settings import SETTINGS, Settings

    hints = typing.get_type_hints(Settings)
    assert {s.name for s in SETTINGS} <= set(hints)
    for setting in SETTINGS:
        hint = hints[setting.name]
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        classes = tuple(typing.get_origin(a) or a for a in allowed if a is not typing.Any)
        classes = tuple(type(None) if c is None else c for c in classes)
        if setting.hook:
            assert setting.default is None and type(None) in classes, setting.name
            continue
        assert classes and isinstance(setting.default, classes), (setting.name, hint, setting.default)
