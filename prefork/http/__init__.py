"""Sans-I/O HTTP/1.1: request-head parsing, body framing, response serialisation. No sockets here."""
