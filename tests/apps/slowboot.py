"""An application that takes a second to import, like a large project."""

import time

time.sleep(1.0)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"booted slowly"]
