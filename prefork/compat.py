"""gunicorn settings prefork accepts without using, or refuses: one table for the config file and the CLI.

Read by ``settings.build_parser`` (every flag appears in ``--help`` with what prefork does with it) and
by ``config`` (a config-file name or a flag in this table is handled here, never as "unknown").
- IGNORED: prefork always behaves the way the setting asks, or the setting has no meaning here; the
  value is accepted and dropped.
- REFUSED: the setting would make prefork unsafe or is not implemented; refused with the reason,
  except when its value is one that asks for nothing (False, None, "", 0, or the setting's harmless
  value), so that a file written out in full (``spew = False``) still loads.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Compat(NamedTuple):
    name: str  # gunicorn's config-file name
    flags: tuple[str, ...]  # gunicorn's flags; () for config-file-only settings
    takes_value: bool
    reason: str
    harmless: tuple[Any, ...] = ()  # values accepted even for a refused setting


IGNORED = {
    c.name: c
    for c in [
        Compat("sendfile", ("--no-sendfile",), False, "wsgi.file_wrapper always uses os.sendfile for regular files"),
        Compat(
            "reuse_port",
            ("--reuse-port",),
            False,
            "EPOLLEXCLUSIVE and the pool's balance rule already spread connections over the workers",
        ),
        Compat("initgroups", ("--initgroups",), False, "supplementary groups are always initialised with --user"),
        Compat(
            "enable_stdio_inheritance",
            ("-R", "--enable-stdio-inheritance"),
            False,
            "the workers always share the master's stdio",
        ),
        Compat(
            "worker_tmp_dir",
            ("--worker-tmp-dir",),
            True,
            "worker health lives in shared memory, not in files (the /dev/shm advice for gunicorn does not apply)",
        ),
        Compat("tmp_upload_dir", (), True, "request bodies are streamed, never written to disk"),
        Compat("default_proc_name", (), True, "the process title uses --name or the application"),
        Compat(
            "disable_redirect_access_to_syslog",
            ("--disable-redirect-access-to-syslog",),
            False,
            "the access log never goes to syslog",
        ),
        Compat("ssl_version", ("--ssl-version",), True, "TLS 1.2 or newer is negotiated by the ssl module's defaults"),
        Compat(
            "do_handshake_on_connect",
            ("--do-handshake-on-connect",),
            False,
            "the handshake always runs in the event loop, never blocking it",
        ),
        Compat("suppress_ragged_eofs", ("--suppress-ragged-eofs",), False, "always suppressed"),
        Compat("control_socket", ("--control-socket",), True, "prefork has no control socket: use signals"),
        Compat("control_socket_mode", ("--control-socket-mode",), True, "see control_socket"),
        Compat("control_socket_disable", ("--no-control-socket",), False, "see control_socket"),
    ]
}

REFUSED = {
    c.name: c
    for c in [
        Compat("spew", ("--spew",), False, "use a profiler or tracer instead", (False,)),
        Compat(
            "logger_class",
            ("--logger-class",),
            True,
            "configure logging with --log-config or logconfig_dict (gunicorn Logger subclasses do not apply)",
            ("gunicorn.glogging.Logger", "simple"),
        ),
        Compat("ssl_context", (), True, "not implemented: use certfile, keyfile, ca_certs, cert_reqs and ciphers"),
        Compat(
            "permit_obsolete_folding",
            ("--permit-obsolete-folding",),
            False,
            "obs-fold is refused (RFC 9112 §5.2): it enables request smuggling",
            (False,),
        ),
        Compat(
            "permit_unconventional_http_method",
            ("--permit-unconventional-http-method",),
            False,
            "methods are validated as RFC 9110 tokens",
            (False,),
        ),
        Compat(
            "permit_unconventional_http_version",
            ("--permit-unconventional-http-version",),
            False,
            "only HTTP/1.0 and HTTP/1.1 are served",
            (False,),
        ),
        Compat(
            "casefold_http_method",
            ("--casefold-http-method",),
            False,
            "methods are case-sensitive (RFC 9110 §9.1)",
            (False,),
        ),
        Compat(
            "strip_header_spaces",
            ("--strip-header-spaces",),
            False,
            "whitespace before a colon is refused (RFC 9112 §5.1): it enables smuggling",
            (False,),
        ),
        Compat("header_map", ("--header-map",), True, "prefork always drops header names with underscores", ("drop",)),
    ]
}

ALL = {**IGNORED, **REFUSED}


def asks_for_nothing(entry: Compat, value: Any) -> bool:
    """Whether a refused setting's value is one prefork can honour by doing nothing."""
    return value in (False, None, "", 0) or value in entry.harmless


def help_text(entry: Compat) -> str:
    verdict = "accepted, no effect" if entry.name in IGNORED else "refused"
    return f"gunicorn's {entry.name}: {verdict}: {entry.reason}."
