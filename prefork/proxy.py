"""Trusted-proxy policy: which peers may tell us the client's scheme and address.

Built once per worker. ``trusts(peer)`` is decided once per connection at accept; only for trusted
peers does ``apply(environ)`` read the scheme headers (``--forwarded-allow-ips``, default loopback;
unix-socket peers are trusted, as in gunicorn) and, when ``--use-forwarded-for`` is on,
X-Forwarded-For or Forwarded (RFC 7239) to set REMOTE_ADDR, keeping the peer's own address in
``prefork.peer_addr``. Headers from untrusted peers stay in the environ but are never believed.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .http.errors import BadRequest

_MAX_VERDICTS = 4096
DEFAULT_SCHEME_HEADERS = {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"}


class ProxyPolicy:
    def __init__(self, allow_ips: str, scheme_headers: dict[str, str], use_forwarded_for: bool) -> None:
        entries = [e.strip() for e in allow_ips.split(",") if e.strip()]
        self.trust_all = "*" in entries
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries if e != "*"]
        self.scheme_headers = [
            ("HTTP_" + name.upper().replace("-", "_"), value.lower()) for name, value in scheme_headers.items()
        ]
        self.use_forwarded_for = use_forwarded_for
        self._verdicts: dict[str, bool] = {}  # peer address -> trusted
        # environ keys whose presence means there is something to believe
        self.keys = frozenset(
            [key for key, _ in self.scheme_headers]
            + (["HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED"] if use_forwarded_for else [])
        )

    def trusts(self, peer: Any) -> bool:
        if not isinstance(peer, tuple):
            return True  # a unix-socket peer is a local process
        if self.trust_all:
            return True
        verdict = self._verdicts.get(peer[0])
        if verdict is None:
            # Parsing the address costs more than the rest of accepting a connection: decide once
            # per peer address (a proxy, a load balancer, a few clients), within a bounded cache.
            verdict = self._trusted_ip(peer[0])
            if len(self._verdicts) >= _MAX_VERDICTS:
                self._verdicts.clear()
            self._verdicts[peer[0]] = verdict
        return verdict

    def _trusted_ip(self, text: str) -> bool:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        return self.trust_all or any(address in network for network in self.networks)

    def apply(self, environ: dict) -> None:
        """Believe a trusted proxy's headers; refuse contradictory scheme headers with 400."""
        verdicts = {environ[key].strip(" \t").lower() == value for key, value in self.scheme_headers if key in environ}
        if len(verdicts) > 1:
            raise BadRequest("contradictory secure scheme headers")
        if verdicts:
            environ["wsgi.url_scheme"] = "https" if verdicts.pop() else "http"
        if self.use_forwarded_for:
            client = self._client_address(environ)
            if client is not None:
                environ["prefork.peer_addr"] = environ["REMOTE_ADDR"]
                environ["REMOTE_ADDR"] = client
                environ["REMOTE_PORT"] = ""

    def _client_address(self, environ: dict) -> str | None:
        """The rightmost address that is not one of our trusted proxies (the leftmost ones are the
        client's own claims, which anyone can forge)."""
        if "HTTP_FORWARDED" in environ:
            hops = _forwarded_for(environ["HTTP_FORWARDED"])
        elif "HTTP_X_FORWARDED_FOR" in environ:
            hops = [h.strip(" \t") for h in environ["HTTP_X_FORWARDED_FOR"].split(",")]
        else:
            return None
        hops = [h for h in hops if h]
        for hop in reversed(hops):
            if not self._trusted_ip(hop):
                # Only an address may become REMOTE_ADDR ("unknown", an obfuscated name or markup
                # would reach every log and every application check): otherwise keep the peer's.
                return hop if _is_ip(hop) else None
        return hops[0] if hops and _is_ip(hops[0]) else None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _forwarded_for(value: str) -> list[str]:
    """The for= addresses of an RFC 7239 Forwarded header, ports and IPv6 brackets removed."""
    result = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, raw = pair.strip(" \t").partition("=")
            if name.lower() != "for":
                continue
            node = raw.strip(" \t").strip('"')
            if node.startswith("["):
                node = node[1:].partition("]")[0]
            elif node.count(":") == 1:
                node = node.partition(":")[0]
            result.append(node)
    return result
