"""One WSGI application with one behaviour (or misbehaviour) per path, for the integration tests."""

import json
import os
import sys
import threading
import time


def _ok(start_response, body, content_type="text/plain", extra=()):
    start_response("200 OK", [("Content-Type", content_type), *extra])
    return [body]


def hello(environ, start_response):
    return _ok(start_response, b"Hello, World!")


def environ_json(environ, start_response):
    """The environ as JSON (strings only), plus what wsgi.input yields."""
    body = environ["wsgi.input"].read()
    data = {k: v for k, v in environ.items() if isinstance(v, str)}
    data["wsgi.multithread"] = environ["wsgi.multithread"]
    data["wsgi.input_terminated"] = environ["wsgi.input_terminated"]
    data["body"] = body.decode("latin-1")
    return _ok(start_response, json.dumps(data).encode(), "application/json")


def echo(environ, start_response):
    """The request body back, read in the way ?mode= says."""
    stream = environ["wsgi.input"]
    mode = environ.get("QUERY_STRING", "")
    if mode == "lines":
        body = b"".join(stream.readlines())
    elif mode == "iter":
        body = b"".join(list(stream))
    elif mode == "small":
        parts = []
        while chunk := stream.read(3):
            parts.append(chunk)
        body = b"".join(parts)
    else:
        body = stream.read()
    return _ok(start_response, body)


def echo_length(environ, start_response):
    """Reads the body in 64 KiB pieces and returns only its length (for large uploads)."""
    total = 0
    while chunk := environ["wsgi.input"].read(65536):
        total += len(chunk)
    return _ok(start_response, str(total).encode())


def no_read(environ, start_response):
    """Answers without reading the request body."""
    return _ok(start_response, b"did not read")


def stream(environ, start_response):
    """A generator body without Content-Length: chunked on HTTP/1.1, close-delimited on 1.0."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        for i in range(3):
            yield f"part{i};".encode()
        yield b""

    return body()


def write_callable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written;")
    return [b"returned"]


def error(environ, start_response):
    raise RuntimeError("boom from the test app")


def error_after_start(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"first;"
        raise RuntimeError("boom while streaming")

    return body()


def exc_info_replace(environ, start_response):
    """start_response, then an error page replaces it with exc_info before anything was sent."""
    start_response("200 OK", [("X-First", "yes")])
    try:
        raise ValueError("oops")
    except ValueError:
        start_response("503 Service Unavailable", [("X-Second", "yes")], sys.exc_info())
    return [b"replaced"]


def start_twice(environ, start_response):
    start_response("200 OK", [])
    start_response("200 OK", [])
    return [b"never"]


def bad_header_crlf(environ, start_response):
    start_response("200 OK", [("X-Evil", "a\r\nSet-Cookie: injected=1")])
    return [b"never"]


def bad_header_name(environ, start_response):
    start_response("200 OK", [("Bad Name", "x")])
    return [b"never"]


def bad_header_latin1(environ, start_response):
    start_response("200 OK", [("X-Snow", "\u2603")])
    return [b"never"]


def bad_status(environ, start_response):
    start_response("OK", [])
    return [b"never"]


def conflicting_length(environ, start_response):
    start_response("200 OK", [("Content-Length", "3"), ("Content-Length", "4")])
    return [b"abc"]


def short_body(environ, start_response):
    start_response("200 OK", [("Content-Length", "10")])
    return iter([b"12345"])


def long_body(environ, start_response):
    start_response("200 OK", [("Content-Length", "5")])
    return iter([b"1234567890"])


def no_content(environ, start_response):
    start_response("204 No Content", [("Content-Length", "0")])
    return [b"dropped"]


def not_modified(environ, start_response):
    start_response("304 Not Modified", [("ETag", '"x"')])
    return [b""]


def connection_close(environ, start_response):
    start_response("200 OK", [("Connection", "close"), ("Content-Length", "2")])
    return [b"ok"]


def file(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](open(os.environ["PREFORK_TEST_FILE"], "rb"), 65536)


SLEEP_STARTED = "testapp: sleep started"  # written to wsgi.errors, so tests wait on it, not on the clock


def sleep(environ, start_response):
    environ["wsgi.errors"].write(SLEEP_STARTED + "\n")
    environ["wsgi.errors"].flush()
    time.sleep(float(environ.get("QUERY_STRING") or "1"))
    return _ok(start_response, b"slept")


class _Closing:
    def __init__(self, body):
        self.body = body

    def __iter__(self):
        return iter(self.body)

    def close(self):
        with open(os.environ["PREFORK_TEST_CLOSE_LOG"], "a") as f:
            f.write("closed\n")


def closing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return _Closing([b"a", b"b"])


def bytes_(environ, start_response):
    """``/bytes?N``: N bytes in 64 KiB pieces, no Content-Length (a long download)."""
    size = int(environ.get("QUERY_STRING") or "65536")
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (b"x" * min(65536, size - offset) for offset in range(0, size, 65536))


def thread(environ, start_response):
    """``/thread?S``: sleeps S seconds (default none), then names the thread that ran the request."""
    seconds = float(environ.get("QUERY_STRING") or "0")
    if seconds:
        time.sleep(seconds)
    return _ok(start_response, threading.current_thread().name.encode())


def pid(environ, start_response):
    return _ok(start_response, str(os.getpid()).encode())


def printer(environ, start_response):
    print("printed by the application", flush=True)
    return _ok(start_response, b"printed")


def crash_worker(environ, start_response):
    os._exit(1)


ROUTES = {
    name.strip("_").replace("_", "-"): func
    for name, func in list(globals().items())
    if callable(func) and not name.startswith("_") and getattr(func, "__module__", None) == __name__
}


def app(environ, start_response):
    name = environ["PATH_INFO"].strip("/").split("/")[0] or "echo"
    handler = ROUTES.get(name)
    if handler is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such test route"]
    return handler(environ, start_response)
