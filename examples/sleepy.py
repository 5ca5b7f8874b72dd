"""An I/O-bound application: every request waits 10 ms (as on a database) before answering."""

import time


def app(environ, start_response):
    time.sleep(0.010)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept 10 ms"]
