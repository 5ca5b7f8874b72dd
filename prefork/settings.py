"""THE settings registry: every setting is declared once here, with gunicorn's name where gunicorn
has the same setting. The command line and ``--help``, the config-file names, the ``PREFORK_<NAME>``
environment variables and docs/settings.md are all generated from this table; ``Settings`` carries the
effective values, typed by annotations that a test keeps in step with the table.

Read by the CLI in the master; workers receive the resulting ``Settings`` object through the fork.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from collections.abc import Callable
from typing import Any, NamedTuple

from . import __version__
from .compat import ALL as COMPAT
from .compat import help_text as compat_help
from .proxy import DEFAULT_SCHEME_HEADERS


class Setting(NamedTuple):
    name: str  # gunicorn's config name when gunicorn has it
    flags: tuple[str, ...]
    default: Any
    doc: str
    section: str
    parse: Callable[[str], Any] = str
    metavar: str | None = None
    append: bool = False  # may be given several times (e.g. --bind)
    choices: tuple[str, ...] | None = None
    flag: bool = False  # a switch without a value (store_true)
    hup: bool = True  # whether a reload (HUP) applies a new value; others need a restart
    hook: bool = False  # a server hook: a function, given in the config file only


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def octal_umask(text: str) -> int:
    value = int(text, 0) if text[:2].lower() in ("0o", "0x") else int(text, 8)
    if not 0 <= value <= 0o777:
        raise ValueError(f"not a umask: {text}")
    return value


def address_list(text: str) -> str:
    """Comma-separated IPs and CIDRs, or ``*``; validated here, parsed by proxy.ProxyPolicy."""
    for entry in filter(None, (e.strip() for e in text.split(","))):
        if entry != "*":
            ipaddress.ip_network(entry, strict=False)
    return text


def json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError("expected a JSON object of header name to value")
    return value


def env_assignment(text: str) -> str:
    if "=" not in text or not text.partition("=")[0]:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return text


def json_mapping(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError(f"must not be negative, got {text}")
    return value


WORKER_CLASSES = ("sync", "threaded", "gthread")  # gthread: gunicorn's name for threaded

# A table: one setting per row, its documentation under it; the formatter leaves it as it is.
# fmt: off
SETTINGS: tuple[Setting, ...] = (
    Setting("bind", flags=("-b", "--bind"), default=["127.0.0.1:8000"], section="server", metavar="ADDRESS",
            append=True, hup=False,
            doc="Address to listen on: HOST:PORT, [IPV6]:PORT or unix:PATH. Repeat to listen on several."),
    Setting("backlog", flags=("--backlog",), default=2048, section="server", parse=positive_int, metavar="INT",
            hup=False,
            doc="Maximum number of pending connections in the kernel queue."),
    Setting("workers", flags=("-w", "--workers"), default=1, section="worker", parse=positive_int, metavar="INT",
            doc="Number of worker processes."),
    Setting("worker_class", flags=("-k", "--worker-class"), default="sync", section="worker", parse=str,
            metavar="NAME", choices=WORKER_CLASSES, hup=False,
            doc="Worker type."),
    Setting("threads", flags=("--threads",), default=1, section="worker", parse=positive_int, metavar="INT",
            hup=False,
            doc="Request threads per worker (threaded worker). More than 1 with the sync worker class selects the "
                "threaded worker, as in gunicorn."),
    Setting("request_timeout", flags=("--request-timeout",), default=0, section="worker", parse=non_negative_float,
            metavar="SECONDS",
            doc="Threaded worker: a request running longer than this many seconds is logged with its thread's stack "
                "and the worker is recycled gracefully. 0 disables it."),
    Setting("worker_connections", flags=("--worker-connections",), default=1000, section="worker",
            parse=positive_int, metavar="INT",
            doc="Maximum number of open connections one worker holds; past it the worker stops accepting until one "
                "closes."),
    Setting("timeout", flags=("-t", "--timeout"), default=30, section="worker", parse=non_negative_int,
            metavar="INT",
            doc="A worker silent for this many seconds (stuck in one request) is killed and replaced. 0 disables the "
                "check."),
    Setting("graceful_timeout", flags=("--graceful-timeout",), default=30, section="worker",
            parse=non_negative_float, metavar="SECONDS",
            doc="On a graceful stop, seconds workers get to finish their requests before they are killed."),
    Setting("keepalive", flags=("--keep-alive",), default=2, section="http", parse=non_negative_float,
            metavar="SECONDS",
            doc="Seconds an idle keep-alive connection is kept open. 0 disables keep-alive."),
    Setting("header_timeout", flags=("--header-timeout",), default=10, section="http", parse=non_negative_float,
            metavar="SECONDS",
            doc="Seconds a client has to send a complete request head; then it gets 408 and is closed."),
    Setting("read_timeout", flags=("--read-timeout",), default=30, section="http", parse=non_negative_float,
            metavar="SECONDS",
            doc="Seconds the server waits for more request body bytes before the request fails with 408."),
    Setting("write_timeout", flags=("--write-timeout",), default=30, section="http", parse=non_negative_float,
            metavar="SECONDS",
            doc="Seconds a response write may wait for a client that does not read before the connection is dropped."),
    Setting("min_write_rate", flags=("--min-write-rate",), default=4096, section="http", parse=non_negative_int,
            metavar="BYTES",
            doc="Bytes per second a client that has fallen behind for --write-timeout seconds must keep reading at; "
                "slower, it is dropped, so a trickling reader cannot hold a worker. 0 = no minimum."),
    Setting("handoff_delay", flags=("--handoff-delay",), default=0.05, section="worker", parse=non_negative_float,
            metavar="SECONDS",
            doc="Seconds a request may wait for a busy worker (the sync worker inside the application, or every "
                "thread of a threaded worker busy) before its connection moves to a free worker. 0 disables hand-off."),
    Setting("limit_request_line", flags=("--limit-request-line",), default=4094, section="http",
            parse=non_negative_int, metavar="INT",
            doc="Maximum request line length in bytes (414 beyond). 0 = no limit."),
    Setting("limit_request_fields", flags=("--limit-request-fields",), default=100, section="http",
            parse=non_negative_int, metavar="INT",
            doc="Maximum number of header fields (431 beyond). 0 = no limit."),
    Setting("limit_request_field_size", flags=("--limit-request-field_size", "--limit-request-field-size"),
            default=8190, section="http", parse=non_negative_int, metavar="INT",
            doc="Maximum size of one header field line (431 beyond). 0 = no limit."),
    Setting("limit_request_body", flags=("--limit-request-body",), default=0, section="http", parse=non_negative_int,
            metavar="INT",
            doc="Maximum request body size in bytes, checked before the body is read, chunked bodies too (413 "
                "beyond). 0 = no limit."),
    Setting("max_requests", flags=("--max-requests",), default=0, section="worker", parse=non_negative_int,
            metavar="INT",
            doc="Recycle a worker after this many requests (a replacement is started and ready before it leaves). 0 "
                "disables recycling."),
    Setting("max_requests_jitter", flags=("--max-requests-jitter",), default=0, section="worker",
            parse=non_negative_int, metavar="INT",
            doc="Add a random 0..N to max_requests per worker so that workers do not recycle all at once."),
    Setting("preload_app", flags=("--preload",), default=False, section="server", flag=True, hup=False,
            doc="Load the application in the master before forking (workers share its memory; HUP re-executes the "
                "master to load new code)."),
    Setting("shutdown_delay", flags=("--shutdown-delay",), default=0, section="server", parse=non_negative_float,
            metavar="SECONDS",
            doc="On TERM, keep serving this many seconds while reporting stopping (to systemd and in the process "
                "title) so load balancers can drain first."),
    Setting("pidfile", flags=("-p", "--pid"), default=None, section="process", parse=str, metavar="FILE", hup=False,
            doc="Write the master's PID to this file."),
    Setting("raw_env", flags=("-e", "--env"), default=[], section="process", parse=env_assignment,
            metavar="KEY=VALUE", append=True, hup=False,
            doc="Set an environment variable for the application: KEY=VALUE. Repeat for several."),
    Setting("pythonpath", flags=("--pythonpath",), default=None, section="process", parse=str, metavar="DIRS",
            hup=False,
            doc="Comma-separated directories put first on sys.path before the application is imported."),
    Setting("user", flags=("-u", "--user"), default=None, section="process", parse=str, metavar="USER", hup=False,
            doc="Run workers as this user (name or uid)."),
    Setting("group", flags=("-g", "--group"), default=None, section="process", parse=str, metavar="GROUP", hup=False,
            doc="Run workers as this group (name or gid)."),
    Setting("umask", flags=("-m", "--umask"), default=None, section="process", parse=octal_umask, metavar="UMASK",
            hup=False,
            doc="File mode creation mask of the server (octal, e.g. 022)."),
    Setting("chdir", flags=("--chdir",), default=None, section="process", parse=str, metavar="DIR", hup=False,
            doc="Change to this directory before loading the application."),
    Setting("loglevel", flags=("--log-level",), default="info", section="logging", parse=str, metavar="LEVEL",
            choices=("debug", "info", "warning", "error", "critical"),
            doc="Error log level."),
    Setting("errorlog", flags=("--error-logfile", "--log-file"), default="-", section="logging", parse=str,
            metavar="FILE", hup=False,
            doc="Error log file; '-' is stderr."),
    Setting("accesslog", flags=("--access-logfile",), default=None, section="logging", parse=str, metavar="FILE",
            doc="Access log file; '-' is stdout. Off when unset."),
    Setting("access_log_format", flags=("--access-logformat",),
            default='%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s '
            '"%(f)s" "%(a)s"', section="logging",
            parse=str, metavar="FORMAT",
            doc="Access log line format, with gunicorn's atoms."),
    Setting("forwarded_allow_ips", flags=("--forwarded-allow-ips",), default="127.0.0.1,::1", section="proxy",
            parse=address_list, metavar="ADDRESSES",
            doc="Peers (IPs and CIDRs, comma-separated, or *) whose proxy headers are believed. Unix-socket peers are"
                " always trusted. gunicorn's FORWARDED_ALLOW_IPS environment variable is honoured too."),
    Setting("secure_scheme_headers", flags=(), default=DEFAULT_SCHEME_HEADERS, section="proxy", parse=json_object,
            metavar="JSON",
            doc="Headers and values by which a trusted proxy says the client used https (wsgi.url_scheme). "
                "Contradicting values get 400. A JSON object in the environment."),
    Setting("use_forwarded_for", flags=("--use-forwarded-for",), default=False, section="proxy", flag=True,
            doc="Set REMOTE_ADDR from X-Forwarded-For or Forwarded sent by a trusted proxy (the rightmost untrusted "
                "address); the peer's address stays in environ['prefork.peer_addr']."),
    Setting("forwarder_headers", flags=("--forwarder-headers",), default="SCRIPT_NAME,PATH_INFO", section="proxy",
            parse=str, metavar="NAMES",
            doc="Header names (with underscores) a trusted proxy may use to set these environ keys directly; from "
                "anyone else they are dropped like every header name with an underscore. PATH_INFO is accepted as a "
                "name (gunicorn's default) but never taken from a header: it would route around the proxy's access "
                "rules. SCRIPT_NAME must prefix the request path (400 otherwise)."),
    Setting("proxy_protocol", flags=("--proxy-protocol",), default=False, section="proxy", flag=True,
            doc="Expect a PROXY protocol header (v1 or v2) at the start of every connection from --proxy-allow-ips; "
                "REMOTE_ADDR/REMOTE_PORT come from it."),
    Setting("proxy_allow_ips", flags=("--proxy-allow-ips", "--proxy-allow-from"), default="127.0.0.1,::1",
            section="proxy", parse=address_list, metavar="ADDRESSES",
            doc="Peers (IPs and CIDRs, or *) that must send a PROXY protocol header when --proxy-protocol is on; "
                "other peers speak plain HTTP."),
    Setting("certfile", flags=("--certfile",), default=None, section="tls", parse=str, metavar="FILE", hup=False,
            doc="TLS certificate chain (PEM). With it, every listener speaks HTTPS; prefer terminating TLS in a proxy"
                " when there is one."),
    Setting("keyfile", flags=("--keyfile",), default=None, section="tls", parse=str, metavar="FILE", hup=False,
            doc="TLS private key (PEM), when not in the certfile."),
    Setting("ca_certs", flags=("--ca-certs",), default=None, section="tls", parse=str, metavar="FILE", hup=False,
            doc="CA certificates (PEM) to verify client certificates."),
    Setting("cert_reqs", flags=("--cert-reqs",), default="none", section="tls", parse=str, metavar="MODE",
            choices=("none", "optional", "required", "0", "1", "2"), hup=False,
            doc="Client certificates: none, optional or required (or gunicorn's 0, 1, 2)."),
    Setting("ciphers", flags=("--ciphers",), default=None, section="tls", parse=str, metavar="CIPHERS", hup=False,
            doc="OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are fixed)."),
    Setting("wsgi_app", flags=(), default=None, section="server", parse=str, metavar="MODULE:APP",
            doc="The application, MODULE:APP, when not given on the command line (config file or PREFORK_WSGI_APP)."),
    Setting("logconfig", flags=("--log-config",), default=None, section="logging", parse=str, metavar="FILE",
            hup=False,
            doc="A logging.config.fileConfig file applied after prefork's own logging setup; a configuration of the "
                "'prefork.error' logger replaces prefork's handlers."),
    Setting("logconfig_dict", flags=("--log-config-dict",), default=None, section="logging", parse=json_mapping,
            metavar="JSON", hup=False,
            doc="A logging.config.dictConfig mapping (JSON on the command line or in the environment, a dict in a "
                "config file), applied like --log-config."),
    Setting("capture_output", flags=("--capture-output",), default=False, section="logging", flag=True, hup=False,
            doc="Send the stdout and stderr of the workers (print() in the application) to the error log file."),
    Setting("syslog", flags=("--log-syslog",), default=False, section="logging", flag=True, hup=False,
            doc="Also send the error log to syslog."),
    Setting("syslog_addr", flags=("--log-syslog-to",), default="unix:///dev/log", section="logging", parse=str,
            metavar="ADDRESS", hup=False,
            doc="Where syslog listens: unix://PATH, udp://HOST:PORT or tcp://HOST:PORT."),
    Setting("syslog_prefix", flags=("--log-syslog-prefix",), default=None, section="logging", parse=str,
            metavar="PREFIX", hup=False,
            doc="The program name in syslog lines (default: prefork.NAME)."),
    Setting("syslog_facility", flags=("--log-syslog-facility",), default="user", section="logging", parse=str,
            metavar="FACILITY", hup=False,
            doc="Syslog facility name."),
    Setting("access_log_json", flags=("--access-log-json",), default=False, section="logging", flag=True,
            doc="Write the access log as one JSON object per line (time, remote_addr, method, uri, path, query, "
                "protocol, status, bytes, duration_ms, referer, user_agent, request_id, pid) instead of "
                "access_log_format."),
    Setting("proc_name", flags=("-n", "--name"), default=None, section="process", parse=str, metavar="NAME",
            doc="Process name shown in ps/top (needs setproctitle)."),
    Setting("daemon", flags=("-D", "--daemon"), default=False, section="process", flag=True, hup=False,
            doc="Detach from the terminal and run in the background (stdio to /dev/null; use --pid and log files). "
                "Under systemd or a container, leave it off."),
    Setting("logconfig_json", flags=("--log-config-json",), default=None, section="logging", parse=str,
            metavar="FILE", hup=False,
            doc="A JSON file holding a logging.config.dictConfig mapping, applied like --log-config-dict."),
    Setting("metrics_bind", flags=("--metrics-bind",), default=None, section="metrics", parse=str, metavar="ADDRESS",
            hup=False,
            doc="Serve /metrics (Prometheus), /status (JSON), /livez and /readyz from the master on this internal "
                "address (HOST:PORT or unix:PATH; never the public port). It answers even when every worker is busy "
                "or hung."),
    Setting("statsd_host", flags=("--statsd-host",), default=None, section="metrics", parse=str, metavar="ADDRESS",
            hup=False,
            doc="Send gunicorn's statsd metrics (requests, request duration, status codes, workers, log levels) over "
                "UDP to HOST:PORT (or unix:PATH). Never blocks a request: a full socket drops the metric."),
    Setting("statsd_prefix", flags=("--statsd-prefix",), default="", section="metrics", parse=str, metavar="PREFIX",
            hup=False,
            doc="Prefix for the statsd metric names (a dot is added)."),
    Setting("dogstatsd_tags", flags=("--dogstatsd-tags",), default="", section="metrics", parse=str, metavar="TAGS",
            hup=False,
            doc="Comma-separated DogStatsD tags (key:value) added to every statsd metric."),
    Setting("reload", flags=("--reload",), default=False, section="development", flag=True, hup=False,
            doc="Development: reload the workers (a graceful HUP) when a source file of the application or a "
                "--reload-extra-file changes."),
    Setting("reload_engine", flags=("--reload-engine",), default="auto", section="development", parse=str,
            metavar="ENGINE", choices=("auto", "poll", "inotify"), hup=False,
            doc="How --reload notices changes: auto or poll (gunicorn's inotify is accepted and polls too)."),
    Setting("reload_extra_files", flags=("--reload-extra-file",), default=[], section="development", parse=str,
            metavar="FILE", append=True, hup=False,
            doc="Another file --reload watches (repeatable)."),
    Setting("paste", flags=("--paste", "--paster"), default=None, section="server", parse=str, metavar="INI",
            hup=False,
            doc="Load the application from a PasteDeploy .ini file (needs the PasteDeploy package) instead of "
                "MODULE:APP."),
    Setting("raw_paste_global_conf", flags=("--paste-global",), default=[], section="server", parse=env_assignment,
            metavar="KEY=VALUE", append=True, hup=False,
            doc="KEY=VALUE global_conf for --paste (repeatable)."),
)
# fmt: on

# Server hooks, with gunicorn's names and signatures. "server" is the master (.log, .cfg, .pid),
# "worker" a worker (.log, .cfg, .pid, .age), "req" the request head (.method, .path, .query, .uri,
# .version, .headers), "resp" the response (.status, .headers, .sent). A hook that raises is logged
# and ignored: it never takes the server down.
_HOOKS = (
    ("on_starting", "server", "Called in the master before it binds its sockets."),
    ("on_reload", "server", "Called in the master on HUP, before the new generation starts."),
    ("when_ready", "server", "Called in the master once its sockets are listening, before the workers start."),
    ("pre_fork", "server, worker", "Called in the master just before a worker is forked."),
    ("post_fork", "server, worker", "Called in a new worker just after the fork."),
    ("post_worker_init", "worker", "Called in a worker after it loaded the application."),
    ("worker_int", "worker", "Called in a worker that received INT or QUIT."),
    ("worker_abort", "worker", "Called in a worker the master found silent (after its stacks were dumped)."),
    ("pre_exec", "server", "Called in the master before it executes a new master (USR2, HUP with --preload)."),
    ("pre_request", "worker, req", "Called in a worker before the application sees a request."),
    ("post_request", "worker, req, environ, resp", "Called in a worker after a request was answered."),
    ("child_exit", "server, worker", "Called in the master after a worker exited."),
    ("worker_exit", "server, worker", "Called in a worker just before it exits."),
    ("nworkers_changed", "server, new_value, old_value", "Called in the master when the worker count changes."),
    ("on_exit", "server", "Called in the master just before it exits."),
)
SETTINGS += tuple(
    Setting(name, flags=(), default=None, section="hooks", hook=True, doc=f"Server hook `{name}({signature})`. {doc}")
    for name, signature, doc in _HOOKS
)

BY_NAME = {s.name: s for s in SETTINGS}


def env_name(setting: Setting) -> str:
    return "PREFORK_" + setting.name.upper()


class Settings:
    """Effective values, one attribute per setting, plus ``app_uri`` and where each value came from.

    The annotations below type every setting for mypy; tests/test_config.py checks that they name
    each setting of the registry and agree with its default."""

    bind: list[str]
    backlog: int
    workers: int
    worker_class: str
    threads: int
    request_timeout: int
    worker_connections: int
    timeout: int
    graceful_timeout: int
    keepalive: int
    header_timeout: int
    read_timeout: int
    write_timeout: int
    min_write_rate: int
    handoff_delay: float
    limit_request_line: int
    limit_request_fields: int
    limit_request_field_size: int
    limit_request_body: int
    max_requests: int
    max_requests_jitter: int
    preload_app: bool
    shutdown_delay: int
    pidfile: str | None
    raw_env: list[str]
    pythonpath: str | None
    user: str | None
    group: str | None
    umask: int | None
    chdir: str | None
    loglevel: str
    errorlog: str
    accesslog: str | None
    access_log_format: str
    forwarded_allow_ips: str
    secure_scheme_headers: dict[str, str]
    use_forwarded_for: bool
    forwarder_headers: str
    proxy_protocol: bool
    proxy_allow_ips: str
    certfile: str | None
    keyfile: str | None
    ca_certs: str | None
    cert_reqs: str
    ciphers: str | None
    wsgi_app: str | None
    logconfig: str | None
    logconfig_dict: dict[str, Any] | None
    capture_output: bool
    syslog: bool
    syslog_addr: str
    syslog_prefix: str | None
    syslog_facility: str
    access_log_json: bool
    proc_name: str | None
    daemon: bool
    logconfig_json: str | None
    metrics_bind: str | None
    statsd_host: str | None
    statsd_prefix: str
    dogstatsd_tags: str
    reload: bool
    reload_engine: str
    reload_extra_files: list[str]
    paste: str | None
    raw_paste_global_conf: list[str]
    on_starting: Callable[..., Any] | None
    on_reload: Callable[..., Any] | None
    when_ready: Callable[..., Any] | None
    pre_fork: Callable[..., Any] | None
    post_fork: Callable[..., Any] | None
    post_worker_init: Callable[..., Any] | None
    worker_int: Callable[..., Any] | None
    worker_abort: Callable[..., Any] | None
    pre_exec: Callable[..., Any] | None
    pre_request: Callable[..., Any] | None
    post_request: Callable[..., Any] | None
    child_exit: Callable[..., Any] | None
    worker_exit: Callable[..., Any] | None
    nworkers_changed: Callable[..., Any] | None
    on_exit: Callable[..., Any] | None
    app_uri: str
    sources: dict[str, str]

    def __init__(self, values: dict[str, Any], app_uri: str, sources: dict[str, str] | None = None) -> None:
        for setting in SETTINGS:
            setattr(self, setting.name, values.get(setting.name, setting.default))
        self.app_uri = app_uri
        self.sources = sources or {}
        self.worker_class = effective_worker_class(self.worker_class, self.threads)

    def __repr__(self) -> str:
        return f"<Settings {vars(self)}>"


def _argparse_type(setting: Setting) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return setting.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: {exc}") from None

    convert.__name__ = setting.metavar or setting.name
    return convert


def build_parser(prog: str = "prefork") -> argparse.ArgumentParser:
    """The command line, generated from the registry (values absent unless given)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="prefork: a pre-fork WSGI HTTP/1.1 server. Settings come from, in rising precedence: "
        "defaults, the config file (-c, default ./prefork.conf.py), PREFORK_<NAME> environment variables "
        "and PREFORK_CMD_ARGS, the command line.",
        argument_default=argparse.SUPPRESS,
    )
    meta = parser.add_argument_group("configuration")
    meta.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="Python config file with gunicorn's setting names (default: ./prefork.conf.py when it exists).",
    )
    meta.add_argument(
        "--check-config",
        action="store_true",
        help="Check the settings, the binds and the application import, then exit: 0 when all is well.",
    )
    meta.add_argument(
        "--print-config",
        action="store_true",
        help="Print every effective setting with its source (default, file, env, cli), then exit.",
    )
    meta.add_argument(
        "--strict-config", action="store_true", help="Unknown names in the config file are errors, not warnings."
    )
    meta.add_argument("--version", action="version", version=f"prefork {__version__}")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for setting in SETTINGS:
        if not setting.flags:
            continue
        group = groups.get(setting.section) or groups.setdefault(
            setting.section, parser.add_argument_group(setting.section)
        )
        default = f" (default: {setting.default!r})" if setting.default not in (None, False) else ""
        help_text = (setting.doc + default).replace("%", "%%")
        if setting.flag:
            group.add_argument(*setting.flags, dest=setting.name, action="store_true", help=help_text)
            continue
        group.add_argument(
            *setting.flags,
            dest=setting.name,
            type=_argparse_type(setting),
            action="append" if setting.append else "store",
            metavar=setting.metavar,
            choices=setting.choices,
            help=help_text,
        )
    compat = parser.add_argument_group("gunicorn settings prefork accepts without effect or refuses")
    for entry in COMPAT.values():
        if entry.flags and entry.takes_value:
            compat.add_argument(*entry.flags, dest=entry.name, metavar="VALUE", help=compat_help(entry))
        elif entry.flags:
            compat.add_argument(*entry.flags, dest=entry.name, action="store_true", help=compat_help(entry))
    parser.add_argument("app_uri", metavar="MODULE:APP", nargs="?", help="WSGI application, e.g. myproject.wsgi:app")
    return parser


def effective_worker_class(name: str, threads: int) -> str:
    """gunicorn's rules: ``gthread`` is our ``threaded``; ``sync`` with threads > 1 becomes threaded."""
    if name == "gthread" or (name == "sync" and threads > 1):
        return "threaded"
    return name
