"""PEP 3333 in one place: environ, start_response, write(), the response body and close().

Every worker calls ``WSGIHandler.handle(conn, head)`` once per parsed request head, from the thread
that runs the request; a handler is built once per worker, after the fork, so that per-request work is
only what truly differs between requests.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from collections.abc import Callable
from time import perf_counter
from typing import Any, NamedTuple
from urllib.parse import unquote_to_bytes

from .body import EMPTY_INPUT, ChunkedBody, Input, LengthBody
from .conn import ClientDisconnected, Connection
from .http.errors import BadRequest, HTTPError, InternalServerError
from .http.framing import ChunkedDecoder
from .http.parser import Limits, RequestHead
from .http.response import (
    CONTINUE,
    LAST_CHUNK,
    app_head,
    chunk,
    date_header,
    frame,
    server_headers,
)
from .proxy import ProxyPolicy
from .request_id import CURRENT as CURRENT_REQUEST_ID
from .request_id import RequestIds

_SEND_SEPARATELY = 16384  # above this, head and body go out as two buffers instead of one copy


class FileWrapper:
    """``wsgi.file_wrapper``: a real file is sent with os.sendfile, anything else is iterated."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        read = self.filelike.read
        while data := read(self.blksize):
            yield data


class Response:
    """The response side of one request: start_response, write and the framing decisions."""

    __slots__ = (
        "conn",
        "handler",
        "is_head",
        "http11",
        "keep_alive",
        "status",
        "headers",
        "headers_sent",
        "code",
        "chunked",
        "length",
        "skip_body",
        "sent",
        "problem",
        "input",
    )

    def __init__(self, conn: Connection, head: RequestHead, handler: WSGIHandler) -> None:
        self.conn = conn
        self.handler = handler
        self.is_head = head.method == "HEAD"
        self.http11 = head.version == "HTTP/1.1"
        self.keep_alive = head.keep_alive
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.code = 0
        self.chunked = False
        self.length: int | None = None  # body bytes the framing promises; None = chunked or close
        self.skip_body = False  # HEAD, 1xx, 204, 304
        self.sent = 0  # body bytes sent
        self.problem = ""  # why the connection cannot be reused although the app succeeded
        self.input: Input | None = None  # the request body, when there is one

    def start_response(self, status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:  # PEP 3333: too late to change anything, re-raise
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response() called a second time without exc_info")
        self.status = status
        self.headers = headers
        return self.write

    def early_hints(self, headers: list[tuple[str, str]]) -> None:
        """``environ["wsgi.early_hints"]``: a 103 Early Hints response (RFC 8297) before the real one,
        to HTTP/1.1 clients only and only before the response head; validated like any header."""
        if self.headers_sent or not self.http11:
            return
        self.conn.send(b"HTTP/1.1 103 Early Hints\r\n" + app_head("103 Early Hints", list(headers)).block + b"\r\n")

    def send_continue(self) -> None:
        """Called on the first read of wsgi.input when the client sent ``Expect: 100-continue``."""
        if not self.headers_sent:
            self.conn.send(CONTINUE)

    def _head(self, body_length: int | None) -> bytes:
        """Validate the application's status and headers, decide the framing, serialise the head."""
        if self.status is None:
            raise AssertionError("the application did not call start_response()")
        app = app_head(self.status, self.headers)
        self.code = app.code
        # --keep-alive 0 or a stopping worker: no more requests here; nor when the request body
        # cannot be drained after the response (say so now, in the head).
        keep_alive = (
            self.keep_alive and self.handler.reuse_connections and (self.input is None or self.input.can_finish())
        )
        head, self.skip_body, self.length, self.chunked, self.keep_alive = frame(
            app, body_length, self.is_head, self.http11, keep_alive, date_header()
        )
        return head

    def _frame(self, data: bytes) -> bytes:
        if self.skip_body:
            return b""
        if self.chunked:
            self.sent += len(data)
            return chunk(data)
        if self.length is not None and self.sent + len(data) > self.length:
            data = data[: self.length - self.sent]
            self.keep_alive = False
            self.problem = f"application sent more than its Content-Length of {self.length}; truncated"
        self.sent += len(data)
        return data

    def _send(self, head: bytes, body: bytes) -> None:
        """The head and the first (already framed and counted) body piece."""
        if len(body) < _SEND_SEPARATELY:
            self.conn.send(head + body)
        else:
            self.conn.send(head)
            self._send_body(body, 0)

    def write(self, data: bytes) -> None:
        """The write() callable of PEP 3333, also used for each chunk of the returned iterable."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"response body must be bytes, not {type(data).__name__}")
            data = bytes(data)
        if self.headers_sent:
            if data:
                before = self.sent
                out = self._frame(data)
                if out:
                    self._send_body(out, before)
            return
        if not data:
            return  # PEP 3333: headers wait for the first non-empty body chunk
        head = self._head(None)
        self.headers_sent = True
        self._send(head, self._frame(data))

    def _send_body(self, out: bytes, before: int) -> None:
        try:
            self.conn.send(out)
        except ClientDisconnected:
            self.sent = before  # the access log counts the body bytes whose writes completed
            raise

    def send_single(self, data: bytes) -> None:
        """A one-element list or tuple body: send it with a computed Content-Length in one write."""
        if self.headers_sent or type(data) is not bytes:
            self.write(data)
            return
        head = self._head(len(data))
        self.headers_sent = True
        if self.length == len(data) and len(data) < _SEND_SEPARATELY:  # the usual case, in one write
            self.sent = self.length
            self.conn.send(head + data)
        else:
            self._send(head, self._frame(data))

    def send_file(self, wrapper: FileWrapper) -> bool:
        """Send a regular file with os.sendfile; False when the wrapped object is not one."""
        if self.headers_sent or not self.conn.supports_sendfile:
            return False
        try:
            fd = wrapper.filelike.fileno()
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                return False
            offset = wrapper.filelike.tell()
            size = max(status.st_size - offset, 0)
        except (AttributeError, OSError, io.UnsupportedOperation):
            return False
        head = self._head(size)
        self.headers_sent = True
        self.conn.send(head)
        if not self.skip_body:
            count = size if self.length is None else min(self.length, size)
            self.sent += self.conn.sendfile(fd, offset, count)
        return True

    def finish(self) -> None:
        """After the body: send what is still owed (head of an empty body, last chunk), check length."""
        if not self.headers_sent:
            head = self._head(0)
            self.headers_sent = True
            self.conn.send(head)
        elif self.chunked:
            self.conn.send(LAST_CHUNK)
        if self.length is not None and self.sent < self.length:
            self.keep_alive = False
            self.problem = f"application sent {self.sent} of {self.length} bytes of its Content-Length"


class HandlerOptions(NamedTuple):
    """Everything a worker's handler is built from, decided once after the fork."""

    limits: Limits
    log: logging.Logger
    errors: Any  # the wsgi.errors stream
    multithread: bool
    server_software: str
    proxy: ProxyPolicy  # believed only for connections from trusted peers
    forwarder_headers: frozenset[str] = frozenset()  # e.g. SCRIPT_NAME, from trusted peers
    access_log: Any = None
    statsd: Any = None  # per-request metrics (--statsd-host)
    observe: bool = False  # --metrics-bind: keep one observation per request
    keepalive: bool = True  # False with --keep-alive 0
    pre_request: Callable | None = None  # server hooks from the config file, called as hook(worker, ...)
    post_request: Callable | None = None
    worker: Any = None  # the hooks' first argument


class WSGIHandler:
    """Runs one request through the application: environ in, response out. One per worker."""

    def __init__(self, app: Callable, options: HandlerOptions) -> None:
        self.app = app
        self.limits = options.limits
        self.log = options.log
        self.access_log = options.access_log
        self.statsd = options.statsd
        self.proxy = options.proxy
        self.proxy_keys = options.proxy.keys
        self.forwarder_headers = options.forwarder_headers
        self.reuse_connections = options.keepalive  # and False once the worker drains
        self.pre_request = options.pre_request
        self.post_request = options.post_request
        self.worker = options.worker
        self.request_ids = RequestIds()
        # --metrics-bind: one (method, status, seconds, body bytes in, out) tuple per request, appended
        # by the request threads (list.append is atomic) and counted by the event loop (stats.py).
        self.observations: list[tuple] | None = [] if options.observe else None
        self.timed = options.access_log is not None or options.statsd is not None or options.observe
        self.after_request = self.timed or options.post_request is not None  # whether _access has work
        self.log_requests = options.log.isEnabledFor(logging.DEBUG)  # gunicorn's "[DEBUG] GET /path" line
        self.base = {
            "SCRIPT_NAME": os.environ.get("SCRIPT_NAME", "").rstrip("/"),  # mounted below a prefix, as gunicorn
            "SERVER_SOFTWARE": options.server_software,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": options.errors,
            "wsgi.multithread": options.multithread,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
        }
        self._keys: dict[str, str] = {}  # header name as sent -> environ key ("" = dropped)
        self._hosts: dict[str, tuple[str, str]] = {}  # Host value -> (SERVER_NAME, SERVER_PORT or "")

    def connection_environ(self, peer: Any, server: Any, scheme: str = "http", sock: Any = None) -> dict:
        """The part of the environ fixed for a connection's lifetime, built once at accept.
        ``gunicorn.socket`` (and ``prefork.socket``) is the client socket, as websocket libraries expect."""
        env = dict(self.base)
        env["gunicorn.socket"] = env["prefork.socket"] = sock
        env["wsgi.url_scheme"] = scheme
        if isinstance(peer, tuple):
            env["REMOTE_ADDR"] = peer[0]
            env["REMOTE_PORT"] = str(peer[1])
        else:  # unix socket peers have no address
            env["REMOTE_ADDR"] = ""
            env["REMOTE_PORT"] = ""
        if isinstance(server, tuple):
            env["SERVER_NAME"] = server[0]
            env["SERVER_PORT"] = str(server[1])
        else:
            env["SERVER_NAME"] = "localhost"
            env["SERVER_PORT"] = "80"
        return env

    def environ(self, conn: Connection, head: RequestHead, wsgi_input: Any) -> dict:
        env = conn.environ.copy()
        env["REQUEST_METHOD"] = head.method
        path = head.path
        env["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1") if "%" in path else path
        env["QUERY_STRING"] = head.query
        env["RAW_URI"] = head.target
        env["SERVER_PROTOCOL"] = head.version
        env["wsgi.input"] = wsgi_input
        keys = self._keys
        proxy_keys = self.proxy_keys if conn.trusted else ()
        from_proxy = False
        for name, value in head.headers:
            key = keys.get(name)
            if key is None:
                key = _environ_key(name)
                if len(keys) < 4096 and len(name) <= 64:
                    keys[name] = key
            if not key:
                if conn.trusted and name.upper() in self.forwarder_headers:  # --forwarder-headers
                    env[name.upper()] = value
                continue
            if key in env:  # repeated field: join as one list value (RFC 9110 §5.3)
                env[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
            else:
                env[key] = value
            if key in proxy_keys:
                from_proxy = True
        if head.host:
            # The target's authority (absolute-form) overrides Host for both keys frameworks read.
            env["HTTP_HOST"] = head.host
            name, port = self._hosts.get(head.host) or self._server_from_host(head.host)
            env["SERVER_NAME"] = name
            env["SERVER_PORT"] = port or ("443" if env["wsgi.url_scheme"] == "https" else "80")
        if from_proxy:
            self.proxy.apply(env)
        script_name = env["SCRIPT_NAME"]
        if script_name:  # from the server's environment, or a trusted forwarder header
            path = env["PATH_INFO"]
            if path != script_name and not path.startswith(script_name + "/"):
                raise BadRequest(f"request path outside SCRIPT_NAME {script_name}")
            env["PATH_INFO"] = path[len(script_name) :]
        return env

    def _server_from_host(self, host: str) -> tuple[str, str]:
        """SERVER_NAME and SERVER_PORT from a Host value not yet in the cache."""
        if host.startswith("["):
            name, _, port = host.partition("]")
            name += "]"
            port = port[1:]
        else:
            name, _, port = host.partition(":")
        if len(self._hosts) < 256 and len(host) <= 255:
            self._hosts[host] = (name, port)
        return name, port

    def handle(self, conn: Connection, head: RequestHead) -> bool:
        """Run one request; True when the connection may carry another one."""
        try:
            return self._handle(conn, head)
        finally:
            CURRENT_REQUEST_ID.set("")  # log records between requests carry no request ID

    def _handle(self, conn: Connection, head: RequestHead) -> bool:
        response = Response(conn, head, self)
        if head.chunked:
            limits = self.limits
            decoder = ChunkedDecoder(limits.max_body, limits.max_fields, limits.max_field_size)
            wsgi_input = Input(ChunkedBody(conn, decoder), response.send_continue if head.expect_continue else None)
        elif head.content_length:
            wsgi_input = Input(
                LengthBody(conn, head.content_length), response.send_continue if head.expect_continue else None
            )
        else:
            wsgi_input = EMPTY_INPUT  # type: ignore[assignment]  # an Input that is always empty
        if wsgi_input is not EMPTY_INPUT:
            response.input = wsgi_input
        environ = self.environ(conn, head, wsgi_input)
        environ["wsgi.early_hints"] = response.early_hints
        environ["prefork.request_id"] = request_id = self.request_ids.pick(environ)
        if self.log_requests:
            self.log.debug("%s %s", head.method, head.path)
        CURRENT_REQUEST_ID.set(request_id)  # error-log records written from here on carry it
        started = perf_counter() if self.timed else 0.0
        if self.pre_request is not None:
            self._call_hook(self.pre_request, head)
        try:
            self._run_app(environ, response)
        except ClientDisconnected:
            self.log.debug("client went away during %s %s", head.method, head.target)
            self._access(head, environ, response, started)  # an aborted download is still a request
            return False
        except HTTPError as exc:  # the body could not be read: too large, timed out, bad chunking
            self._send_error(response, exc)
            self._access(head, environ, response, started)
            conn.linger = True
            return False
        except Exception:
            self.log.exception("Error handling request %s %s", head.method, head.target)
            self._send_error(response, InternalServerError("the application failed; see the server log"))
            self._access(head, environ, response, started)
            conn.linger = True
            return False
        if response.problem:
            self.log.error("%s %s: %s", head.method, head.target, response.problem)
        if self.after_request:
            self._access(head, environ, response, started)
        if response.keep_alive and (wsgi_input is EMPTY_INPUT or wsgi_input.finish()):
            return True
        # Closing with unread input makes the kernel reset the connection, which can destroy the
        # response before the client reads it: linger, unless the client itself asked to close and
        # nothing of it is left to read.
        conn.linger = head.keep_alive or bool(conn.buf) or not wsgi_input.done
        return False

    def _run_app(self, environ: dict, response: Response) -> None:
        result = self.app(environ, response.start_response)
        if type(result) is list or type(result) is tuple:  # no close() to call
            if len(result) == 1:
                response.send_single(result[0])
            else:
                for data in result:
                    response.write(data)
            response.finish()
            return
        try:
            if not (type(result) is FileWrapper and response.send_file(result)):
                for data in result:
                    response.write(data)
            response.finish()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _call_hook(self, hook: Callable, *args: Any) -> None:
        """pre_request or post_request from the config file; a failing hook is only logged."""
        try:
            hook(self.worker, *args)
        except Exception:
            self.log.exception("Hook %s raised; carrying on", getattr(hook, "__name__", "request hook"))

    def _send_error(self, response: Response, exc: HTTPError) -> None:
        if response.headers_sent:
            return  # too late for a status: closing the connection tells the client
        response.code = int(exc.status[:3])
        try:
            response.conn.send(exc.render(server_headers()))
        except ClientDisconnected:
            pass

    def _access(self, head: RequestHead, environ: dict, response: Response, started: float) -> None:
        """After a request: the access log line and the post_request hook."""
        if self.access_log is not None:
            self.access_log.log(environ, response, perf_counter() - started)
        if self.statsd is not None:
            self.statsd.request(response.code, perf_counter() - started)
        if self.observations is not None:
            self.observations.append(
                (head.method, response.code, perf_counter() - started, head.content_length, response.sent)
            )
        if self.post_request is not None:
            self._call_hook(self.post_request, head, environ, response)


def _environ_key(name: str) -> str:
    """``Content-Type`` -> ``CONTENT_TYPE``, ``X-A`` -> ``HTTP_X_A``; "" for names with "_".

    A name with an underscore would collide with its dash twin once both become ``HTTP_X_A``; like
    gunicorn's ``header_map=drop`` we drop it, so a client cannot spoof a header a proxy vetted.
    """
    if "_" in name:
        return ""
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return key
    return "HTTP_" + key
