"""The benchmark scenarios as one WSGI application (the same code runs under every server).

/        13-byte hello
/json    a 1 KiB JSON document built per request
/mib     a 1 MiB body from memory
/file    a 1 MiB file through wsgi.file_wrapper (sendfile where the server supports it)
/post    reads the whole request body and answers its length
/sleep   waits 10 ms (as on a database) before answering
/slow    waits 1 s (the slow endpoint of benchmarks/headofline.py)
/pid     the serving process's id (to see how requests split over workers)
"""

import json
import os
import tempfile
import time

_MIB = b"x" * (1 << 20)
_FILE = os.path.join(tempfile.gettempdir(), f"prefork-bench-{os.getuid()}.bin")
if not os.path.exists(_FILE) or os.path.getsize(_FILE) != len(_MIB):
    with open(_FILE, "wb") as f:
        f.write(_MIB)


def _read_blocks(path):
    """PEP 3333's fallback for servers without wsgi.file_wrapper."""
    with open(path, "rb") as f:
        while block := f.read(65536):
            yield block


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/json":
        items = [{"id": i, "name": f"item-{i}", "price": i * 1.25, "tags": ["a", "b"]} for i in range(14)]
        body = json.dumps({"items": items, "path": path}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/mib":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [_MIB]
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(_MIB)))])
        wrapper = environ.get("wsgi.file_wrapper")  # optional in PEP 3333: granian has none
        return wrapper(open(_FILE, "rb"), 65536) if wrapper else _read_blocks(_FILE)
    if path == "/post":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length)
        body = str(len(data)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/sleep":
        time.sleep(0.010)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept 10 ms"]
    if path == "/slow":
        time.sleep(1.0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept 1 s"]
    if path == "/pid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]
