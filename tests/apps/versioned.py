"""An application whose code "changes" between reloads: it serves the version file read at import.

A version file containing "broken" makes the import fail, like a deploy with a syntax error.
"""

import os

with open(os.environ["PREFORK_TEST_VERSION_FILE"]) as _f:
    VERSION = _f.read().strip()

if VERSION == "broken":
    raise RuntimeError("this deploy is broken")

_BODY = VERSION.encode()
_leak = []


def app(environ, start_response):
    if environ["PATH_INFO"] == "/leak":
        _leak.append(b"x" * 100_000)  # grows until --max-requests recycles the worker
    if environ["PATH_INFO"] == "/orphan":
        os.system("sleep 0.2 &")  # the shell exits at once: sleep is re-parented to PID 1
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Pid", str(os.getpid()))])
    return [_BODY]
