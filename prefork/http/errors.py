"""HTTP errors raised while reading a request; each one knows its status and renders itself.

Raised by the sans-I/O parser and body decoders (``prefork.http``) and by the body readers of a
connection. One ``except HTTPError`` in the connection code turns any of them into a response that
closes the connection: after a framing error nothing that follows on the wire can be trusted.
"""

from __future__ import annotations


class HTTPError(Exception):
    """A request the server refuses; ``status`` is the full status line text, e.g. ``400 Bad Request``."""

    status = "400 Bad Request"

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason or self.status)
        self.reason = reason or self.status

    def render(self, server_headers: bytes) -> bytes:
        """The whole response: status line, ``server_headers`` (Date, Server), a short body, close."""
        body = f"{self.status}\n{self.reason}\n".encode("latin-1", "replace")
        return (
            f"HTTP/1.1 {self.status}\r\n".encode("ascii")
            + server_headers
            + b"Content-Type: text/plain; charset=iso-8859-1\r\n"
            + b"Content-Length: "
            + str(len(body)).encode("ascii")
            + b"\r\n"
            + b"Connection: close\r\n\r\n"
            + body
        )


class BadRequest(HTTPError):
    status = "400 Bad Request"


class RequestTimeout(HTTPError):
    status = "408 Request Timeout"


class PayloadTooLarge(HTTPError):
    status = "413 Content Too Large"


class URITooLong(HTTPError):
    status = "414 URI Too Long"


class ExpectationFailed(HTTPError):
    status = "417 Expectation Failed"


class HeaderFieldsTooLarge(HTTPError):
    status = "431 Request Header Fields Too Large"


class NotImplementedHTTP(HTTPError):
    status = "501 Not Implemented"


class VersionNotSupported(HTTPError):
    status = "505 HTTP Version Not Supported"


class InternalServerError(HTTPError):
    """Rendered when the application fails before its response started."""

    status = "500 Internal Server Error"
