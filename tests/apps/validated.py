"""Applications wrapped in wsgiref.validate.validator: PEP 3333 checks run inside the server."""

from wsgiref.validate import validator


def _body_app(environ, start_response):
    stream = environ["wsgi.input"]
    first = stream.readline()
    rest = stream.read(int(environ.get("CONTENT_LENGTH") or 100))
    body = first + rest
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _stream_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"a", b"b", b"c"])


def _file_app(environ, start_response):
    import io

    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](io.BytesIO(b"wrapped bytes"), 4)


def _router(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        return _stream_app(environ, start_response)
    if path == "/file":
        return _file_app(environ, start_response)
    return _body_app(environ, start_response)


app = validator(_router)
