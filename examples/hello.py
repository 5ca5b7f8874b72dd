"""The example application of the README and the benchmarks: a 13-byte hello world."""


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]


application = app
