"""Uses the environ keys libraries look for: wsgi.early_hints and gunicorn.socket."""


def app(environ, start_response):
    environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload; as=style")])
    sock = environ["gunicorn.socket"]
    body = f"{type(sock).__name__} {sock is environ['prefork.socket']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
