"""Sans-I/O parser for the PROXY protocol header, versions 1 (text) and 2 (binary).

A load balancer that speaks it (HAProxy, AWS NLB, …) puts one header before the first request of
each connection, naming the client's real address. ``parse_proxy_header(buf)`` returns ``None``
while the header is incomplete, else ``(address, consumed)`` where ``address`` is
``(client_ip, client_port)`` or ``None`` for LOCAL/UNKNOWN connections (health checks: keep the
peer's address). Anything malformed raises BadRequest: the connection must not be read as HTTP.
"""

from __future__ import annotations

import ipaddress
import struct

from .errors import BadRequest

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the longest v1 line, CRLF included
_V2_HEADER = struct.Struct("!12sBBH")


def parse_proxy_header(buf: bytes | bytearray) -> tuple[tuple[str, int] | None, int] | None:
    if buf[:12] == V2_SIGNATURE[: len(buf[:12])] and buf[:1] == b"\r":
        return _parse_v2(buf)
    if b"PROXY "[: len(buf)] == buf[:6] and len(buf) < 6:
        return None
    if buf.startswith(b"PROXY "):
        return _parse_v1(buf)
    raise BadRequest("expected a PROXY protocol header")


def _parse_v1(buf: bytes | bytearray) -> tuple[tuple[str, int] | None, int] | None:
    end = buf.find(b"\r\n")
    if end < 0:
        if len(buf) >= V1_MAX:
            raise BadRequest("PROXY v1 header too long")
        return None
    if end + 2 > V1_MAX:
        raise BadRequest("PROXY v1 header too long")
    parts = buf[:end].decode("ascii", "replace").split(" ")
    if parts[1:2] == ["UNKNOWN"]:
        return None, end + 2
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise BadRequest("invalid PROXY v1 header")
    _, family, source, destination, source_port, destination_port = parts
    version = 4 if family == "TCP4" else 6
    for address in (source, destination):
        try:
            if ipaddress.ip_address(address).version != version:
                raise ValueError
        except ValueError:
            raise BadRequest("invalid address in PROXY v1 header") from None
    for port in (source_port, destination_port):
        if not (port.isdigit() and port == str(int(port)) and int(port) <= 65535):
            raise BadRequest("invalid port in PROXY v1 header")
    return (source, int(source_port)), end + 2


def _parse_v2(buf: bytes | bytearray) -> tuple[tuple[str, int] | None, int] | None:
    if len(buf) < 16:
        if buf[:12] != V2_SIGNATURE[: len(buf)]:
            raise BadRequest("invalid PROXY v2 signature")
        return None
    signature, version_command, family, length = _V2_HEADER.unpack_from(buf)
    if signature != V2_SIGNATURE:
        raise BadRequest("invalid PROXY v2 signature")
    if version_command >> 4 != 2 or version_command & 0x0F not in (0, 1):
        raise BadRequest("unsupported PROXY v2 version or command")
    if len(buf) < 16 + length:
        return None
    consumed = 16 + length
    if version_command & 0x0F == 0:  # LOCAL: the proxy's own connection (health check)
        return None, consumed
    body = buf[16:consumed]
    if family == 0x11:  # TCP over IPv4
        if length < 12:
            raise BadRequest("short PROXY v2 address block")
        return (str(ipaddress.IPv4Address(body[:4])), struct.unpack("!H", body[8:10])[0]), consumed
    if family == 0x21:  # TCP over IPv6
        if length < 36:
            raise BadRequest("short PROXY v2 address block")
        return (str(ipaddress.IPv6Address(body[:16])), struct.unpack("!H", body[32:34])[0]), consumed
    if family == 0x00:  # UNSPEC
        return None, consumed
    raise BadRequest("unsupported PROXY v2 address family")
