"""The error log (Python logging, gunicorn's line format) and the access log (gunicorn's atoms).

Set up in the master before forking; workers inherit the open files. Access-log values are escaped
so that a client cannot forge a log line: control characters, quotes, backslashes and non-ASCII
bytes are written as escapes.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from base64 import b64decode
from typing import Any, TextIO

from .request_id import CURRENT as CURRENT_REQUEST_ID

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(request_id)s%(message)s"
ERROR_DATEFMT = "%Y-%m-%d %H:%M:%S %z"
FAILURE_REPORT_INTERVAL = 10.0  # seconds between two reports of a failing access log
DEFAULT_ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0x100)]}
_ESCAPES[ord('"')] = '\\"'
_ESCAPES[ord("\\")] = "\\\\"


def escape(value: str) -> str:
    """Make ``value`` safe inside one log line (and inside the double quotes of the format)."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value
    return value.translate(_ESCAPES)


def open_log_stream(target: str) -> TextIO:
    """``-`` is stdout; anything else is a file opened for appending, line-buffered."""
    if target == "-":
        return sys.stdout
    return open(target, "a", buffering=1, encoding="utf-8", errors="backslashreplace")


def unwritable_log_paths(settings: Any) -> list[str]:
    """Each configured log file that cannot be opened for appending, with the reason; checked by the
    master before it binds, so that a bad path stops the start instead of crash-looping the workers."""
    problems = []
    for what, path in (("error log", settings.errorlog), ("access log", settings.accesslog)):
        if not path or path == "-":
            continue
        try:
            with open(path, "a"):
                pass
        except OSError as exc:
            problems.append(f"cannot open the {what} {path}: {exc.strerror or exc}")
    return problems


def _add_request_id(record: logging.LogRecord) -> bool:
    """Tag records written while a request runs with its ID: ``[req abc-1f] message``."""
    request_id = CURRENT_REQUEST_ID.get()
    record.request_id = f"[req {request_id}] " if request_id else ""
    return True


def setup_error_log(target: str, level: str) -> logging.Logger:
    """The ``prefork.error`` logger writing to stderr (``-``) or to a file."""
    log = logging.getLogger("prefork.error")
    log.handlers.clear()
    stream = sys.stderr if target == "-" else open_log_stream(target)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(ERROR_FORMAT, ERROR_DATEFMT))
    handler.addFilter(_add_request_id)
    log.addHandler(handler)
    log.setLevel(level.upper())
    log.propagate = False
    return log


def configure_logging(settings: Any, statsd: Any = None) -> logging.Logger:
    """The error log from the settings: file or stderr, syslog, then --log-config/--log-config-dict."""
    log = setup_error_log(settings.errorlog, settings.loglevel)
    if settings.syslog:
        log.addHandler(_syslog_handler(settings))
    if settings.logconfig or settings.logconfig_dict or settings.logconfig_json:
        import logging.config  # here, not at the top: it weighs 2 MB in every process
    if settings.logconfig:
        logging.config.fileConfig(settings.logconfig, disable_existing_loggers=False)
    if settings.logconfig_json:
        with open(settings.logconfig_json) as f:
            logging.config.dictConfig({"disable_existing_loggers": False, **json.load(f)})
    if settings.logconfig_dict:
        logging.config.dictConfig({"disable_existing_loggers": False, **settings.logconfig_dict})
    if statsd is not None:
        from .statsd import StatsdLogHandler

        log.addHandler(StatsdLogHandler(statsd))
    return log


def _syslog_handler(settings: Any) -> logging.Handler:
    import logging.handlers  # only with --log-syslog: 1.7 MB in every process

    scheme, _, rest = settings.syslog_addr.partition("://")
    if scheme == "unix":
        address: Any = rest
        kind = socket.SOCK_DGRAM
    elif scheme in ("udp", "tcp"):
        host, _, port = rest.rpartition(":")
        address = (host.strip("[]"), int(port))
        kind = socket.SOCK_DGRAM if scheme == "udp" else socket.SOCK_STREAM
    else:
        raise ValueError(f"syslog address must be unix://, udp:// or tcp://, not {settings.syslog_addr!r}")
    facility = logging.handlers.SysLogHandler.facility_names[settings.syslog_facility]
    handler = logging.handlers.SysLogHandler(address, facility, kind)
    prefix = settings.syslog_prefix or f"prefork.{settings.proc_name or 'prefork'}"
    handler.setFormatter(logging.Formatter(f"{prefix}[%(process)d]: [%(levelname)s] %(request_id)s%(message)s"))
    handler.addFilter(_add_request_id)
    return handler


def capture_output(log: logging.Logger) -> None:
    """--capture-output: the process's stdout and stderr (fds 1 and 2) go to the error log file."""
    stream = error_stream(log)
    if stream in (sys.stdout, sys.stderr):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(stream.fileno(), 1)
    os.dup2(stream.fileno(), 2)


def reopen_error_log(log: logging.Logger) -> None:
    """USR1: reopen the error log file (after logrotate moved it); stderr is left alone."""
    for handler in log.handlers:
        stream = getattr(handler, "stream", None)
        path = getattr(stream, "name", None)
        if isinstance(handler, logging.StreamHandler) and isinstance(path, str) and not path.startswith("<"):
            handler.acquire()
            try:
                old = handler.stream
                handler.stream = open_log_stream(path)
                old.close()
            finally:
                handler.release()


def error_stream(log: logging.Logger) -> TextIO:
    """The stream behind the error log, for ``wsgi.errors``."""
    for handler in log.handlers:
        stream = getattr(handler, "stream", None)
        if stream is not None:
            return stream
    return sys.stderr


class _Atoms(dict):
    """gunicorn's atoms, plus ``{name}i``, ``{name}o`` and ``{name}e`` looked up on demand."""

    def __init__(self, atoms: dict, environ: dict, response_headers: list) -> None:
        super().__init__(atoms)
        self.environ = environ
        self.response_headers = response_headers

    def __missing__(self, key: str) -> str:
        if key.startswith("{") and len(key) > 3 and key[-2] == "}":
            name, kind = key[1:-2], key[-1]
            if kind == "i":
                value = self.environ.get("HTTP_" + name.upper().replace("-", "_"))
                if value is None and name.lower() in ("content-type", "content-length"):
                    value = self.environ.get(name.upper().replace("-", "_"))
            elif kind == "o":
                lname = name.lower()
                value = next((v for n, v in self.response_headers if n.lower() == lname), None)
            elif kind == "e":
                value = self.environ.get(name) or None  # gunicorn prints "-" for an empty variable
            else:
                value = None
            return "-" if value is None else escape(str(value))
        return "-"


class AccessLog:
    """One line per request in ``fmt`` (gunicorn's ``access_log_format``), thread-safe."""

    def __init__(self, stream: TextIO, fmt: str = DEFAULT_ACCESS_FORMAT, as_json: bool = False) -> None:
        self.stream = stream
        self.fmt = fmt
        self.as_json = as_json
        self.lock = threading.Lock()
        self.pid = f"<{os.getpid()}>"
        self.failures = 0  # lines that could not be written
        self.next_failure_report = 0.0

    def line(self, environ: dict, response: Any, duration: float) -> str:
        if self.as_json:
            return self.json_line(environ, response, duration)
        get = environ.get
        method = escape(get("REQUEST_METHOD", "-"))
        uri = escape(get("RAW_URI", "-"))
        protocol = escape(get("SERVER_PROTOCOL", "-"))
        sent = response.sent if response.headers_sent else 0
        atoms = {
            "h": escape(get("REMOTE_ADDR", "-")),  # "" for a unix-socket peer, as gunicorn logs it
            "l": "-",
            "u": _basic_auth_user(get("HTTP_AUTHORIZATION")),
            "t": time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
            "r": f"{method} {uri} {protocol}",
            "s": str(response.code),
            "m": method,
            "U": escape(get("PATH_INFO", "-")),
            "q": escape(get("QUERY_STRING", "")),
            "H": protocol,
            "b": str(sent) if sent else "-",
            "B": str(sent),
            "f": escape(get("HTTP_REFERER", "-")),
            "a": escape(get("HTTP_USER_AGENT", "-")),
            "T": str(int(duration)),
            "D": str(int(duration * 1_000_000)),
            "M": str(int(duration * 1000)),
            "L": f"{duration:.6f}",
            "p": self.pid,
        }
        return self.fmt % _Atoms(atoms, environ, response.headers or [])

    def json_line(self, environ: dict, response: Any, duration: float) -> str:
        """One JSON object; json.dumps escapes every string, whatever bytes the client sent."""
        get = environ.get
        return json.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "remote_addr": get("REMOTE_ADDR"),
                "method": get("REQUEST_METHOD"),
                "uri": get("RAW_URI"),
                "path": get("PATH_INFO"),
                "query": get("QUERY_STRING"),
                "protocol": get("SERVER_PROTOCOL"),
                "status": response.code,
                "bytes": response.sent if response.headers_sent else 0,
                "duration_ms": round(duration * 1000, 3),
                "referer": get("HTTP_REFERER"),
                "user_agent": get("HTTP_USER_AGENT"),
                "request_id": get("prefork.request_id"),
                "pid": os.getpid(),
            }
        )

    def reopen(self) -> None:
        """USR1: reopen the access log file; stdout is left alone."""
        path = getattr(self.stream, "name", None)
        if isinstance(path, str) and not path.startswith("<"):
            with self.lock:
                old, self.stream = self.stream, open_log_stream(path)
                old.close()

    def log(self, environ: dict, response: Any, duration: float) -> None:
        """Write one line. A failing write (disk full, file gone) never fails the request: it is
        counted and reported in the error log at most once per FAILURE_REPORT_INTERVAL."""
        text = self.line(environ, response, duration) + "\n"
        with self.lock:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError) as exc:
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        now = time.monotonic()
        if now >= self.next_failure_report:
            self.next_failure_report = now + FAILURE_REPORT_INTERVAL
            logging.getLogger("prefork.error").error(
                "Access log write failed (%d lines lost so far): %s", self.failures, exc
            )


def _basic_auth_user(authorization: str | None) -> str:
    if not authorization or authorization[:6].lower() != "basic ":
        return "-"
    try:
        user = b64decode(authorization[6:].strip(), validate=True).decode("latin-1").partition(":")[0]
    except ValueError:
        return "-"
    return escape(user) or "-"
