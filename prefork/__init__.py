"""prefork: a pre-fork WSGI HTTP/1.1 server for production."""

__version__ = "0.1.0"
