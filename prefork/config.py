"""From argv, the environment and the config file to one ``Settings``, remembering each value's source.

Precedence, lowest first: defaults < config file (``-c FILE``, else ``./prefork.conf.py`` if present)
< environment (``PREFORK_<NAME>``, ``PREFORK_CMD_ARGS``, and gunicorn's ``WEB_CONCURRENCY`` and
``PORT`` as defaults) < command line. A config file uses gunicorn's setting names, so a gunicorn user's
``gunicorn.conf.py`` loads unchanged; a name prefork does not know is an error with a suggestion,
and a gunicorn setting prefork does not support is an error that says so.
Runs in the master only.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import shlex
from typing import Any

from .settings import BY_NAME, SETTINGS, Setting, Settings, build_parser, env_name

DEFAULT_CONFIG_FILE = "prefork.conf.py"

# gunicorn settings prefork knows and refuses, with the reason an operator needs.
UNSUPPORTED = {
    "daemon": "run prefork under systemd, a container runtime or a process supervisor instead",
    "reload": "code reloading on file change is a development feature; send HUP to reload",
    "reload_engine": "see 'reload'",
    "reload_extra_files": "see 'reload'",
    "spew": "use a profiler or tracer instead",
    "worker_tmp_dir": "worker health lives in shared memory, not in files",
    "paste": "PasteDeploy applications are not supported; name the WSGI callable",
    "raw_paste_global_conf": "see 'paste'",
    "statsd_host": "statsd metrics are not implemented yet",
    "dogstatsd_tags": "see 'statsd_host'",
    "statsd_prefix": "see 'statsd_host'",
    "logger_class": "configure logging with the logging module instead",
    "ssl_context": "not implemented: use certfile, keyfile, ca_certs, cert_reqs and ciphers",
    "ssl_version": "TLS 1.2 or newer is negotiated by the ssl module's defaults",
    "do_handshake_on_connect": "the handshake always runs in the event loop, never blocking it",
    "suppress_ragged_eofs": "always suppressed",
    "permit_obsolete_folding": "obs-fold is refused (RFC 9112 §5.2): it enables request smuggling",
    "permit_unconventional_http_method": "methods are validated as RFC 9110 tokens",
    "permit_unconventional_http_version": "only HTTP/1.0 and HTTP/1.1 are served",
    "casefold_http_method": "methods are case-sensitive (RFC 9110 §9.1)",
    "strip_header_spaces": "whitespace before a colon is refused (RFC 9112 §5.1): it enables smuggling",
    "header_map": "prefork always drops header names with underscores ('drop')",
    "logconfig_json": "use logconfig_dict (a dict in the config file, or JSON in --log-config-dict)",
    "disable_redirect_access_to_syslog": "the access log never goes to syslog",
}
# gunicorn settings that have no effect in prefork because it always behaves that way: accepted, so
# that gunicorn config files load, and listed by --print-config's caller as ignored.
IGNORED = {
    "sendfile": "wsgi.file_wrapper always uses os.sendfile for regular files",
    "reuse_port": "EPOLLEXCLUSIVE already wakes one worker per connection",
    "initgroups": "supplementary groups are always initialised with --user",
    "tmp_upload_dir": "request bodies are streamed, never written to disk",
    "default_proc_name": "the process title uses --name or the application",
    "enable_stdio_inheritance": "prefork never daemonizes: the workers always share its stdio",
}


# Values of these types are settings (or typos of settings); anything else in a config file is a helper.
_SETTING_TYPES = (str, bytes, int, float, bool, list, tuple, dict, type(None))


_IGNORE = object()


class ConfigError(Exception):
    """Settings that cannot be used; the message names the setting and its source."""


def load(argv: list[str], environ: dict[str, str] | None = None) -> tuple[Settings, argparse.Namespace]:
    """Parse everything; returns the settings and the CLI-only switches (config, check/print)."""
    environ = dict(os.environ if environ is None else environ)
    parser = build_parser()
    cli = vars(parser.parse_args(argv))
    meta = argparse.Namespace(**{k: cli.pop(k, None) for k in ("config", "check_config", "print_config")})
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def apply(layer: dict[str, Any], source: str) -> None:
        for name, value in layer.items():
            values[name] = value
            sources[name] = source

    apply(_gunicorn_environment(environ), "env")
    path = meta.config or (DEFAULT_CONFIG_FILE if os.path.exists(DEFAULT_CONFIG_FILE) else None)
    if path:
        apply(load_file(path), f"file {path}")
    apply(_environment(environ), "env")
    if environ.get("PREFORK_CMD_ARGS"):
        extra = vars(parser.parse_args(shlex.split(environ["PREFORK_CMD_ARGS"])))
        app_from_env = extra.pop("app_uri", None)
        if app_from_env:
            extra["wsgi_app"] = app_from_env
        apply({k: v for k, v in extra.items() if k in BY_NAME}, "env PREFORK_CMD_ARGS")
    app_uri = cli.pop("app_uri", None)
    apply({k: v for k, v in cli.items() if k in BY_NAME}, "cli")
    if app_uri:
        apply({"wsgi_app": app_uri}, "cli")
    app = values.get("wsgi_app")
    if not app:
        parser.error("the application (MODULE:APP) is required, on the command line or as wsgi_app")
    return Settings(values, app, sources), meta


def load_file(path: str) -> dict[str, Any]:
    """Run a Python config file and return its settings, refusing unknown and unsupported names."""
    try:
        namespace = runpy.run_path(path, run_name="__config__")
    except FileNotFoundError:
        raise ConfigError(f"config file {path!r} not found") from None
    except Exception as exc:  # noqa: BLE001 - whatever the file raises is reported as a config error
        raise ConfigError(f"config file {path!r} failed: {exc!r}") from None
    values = {}
    for name, value in namespace.items():
        if name.startswith("_"):
            continue
        if not isinstance(value, _SETTING_TYPES) and name not in BY_NAME:
            continue  # a module, helper function, class or object the file imports or defines
        value = _file_value(name, value, path)
        if value is not _IGNORE:
            values[name] = value
    return values


def _file_value(name: str, value: Any, path: str) -> Any:
    if name in IGNORED:
        return _IGNORE
    if name in UNSUPPORTED:
        raise ConfigError(f"{path}: setting {name!r} is not supported by prefork: {UNSUPPORTED[name]}")
    setting = BY_NAME.get(name)
    if setting is None:
        import difflib  # only for a typo's suggestion

        close = difflib.get_close_matches(name, [*BY_NAME, *UNSUPPORTED], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{path}: unknown setting {name!r}{hint}")
    try:
        return coerce(setting, value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: invalid value for {name!r}: {exc}") from None


def coerce(setting: Setting, value: Any) -> Any:
    """A config-file or environment value -> the setting's type, through the same validator as the CLI."""
    if setting.hook:
        if value is not None and not callable(value):
            raise TypeError(f"a hook must be a function, not {type(value).__name__}")
        return value
    if setting.flag:
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(value, dict) or (isinstance(value, list | tuple) and not setting.append):
        return setting.parse(json.dumps(value))
    if setting.append:
        items = value.split() if isinstance(value, str) else list(value)
        return [setting.parse(str(item)) for item in items]
    if value is None:
        return None
    result = setting.parse(str(value))
    if setting.choices and result not in setting.choices:
        raise ValueError(f"{value!r} is not one of {', '.join(setting.choices)}")
    return result


def _environment(environ: dict[str, str]) -> dict[str, Any]:
    values = {}
    for setting in SETTINGS:
        raw = None if setting.hook else environ.get(env_name(setting))
        if raw is not None:
            try:
                values[setting.name] = coerce(setting, raw)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{env_name(setting)}: invalid value: {exc}") from None
    return values


def _gunicorn_environment(environ: dict[str, str]) -> dict[str, Any]:
    """gunicorn's conventions: WEB_CONCURRENCY workers, PORT to bind on all interfaces,
    FORWARDED_ALLOW_IPS."""
    values: dict[str, Any] = {}
    try:
        if environ.get("WEB_CONCURRENCY"):
            values["workers"] = BY_NAME["workers"].parse(environ["WEB_CONCURRENCY"])
        if environ.get("PORT"):
            values["bind"] = [f"0.0.0.0:{int(environ['PORT'])}"]
        if environ.get("FORWARDED_ALLOW_IPS"):
            values["forwarded_allow_ips"] = environ["FORWARDED_ALLOW_IPS"]
    except ValueError as exc:
        raise ConfigError(f"WEB_CONCURRENCY/PORT: {exc}") from None
    return values


def describe(settings: Settings) -> str:
    """--print-config: every effective value with its source."""
    lines = []
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        lines.append(f"{setting.name:26} = {value!r:40} # {settings.sources.get(setting.name, 'default')}")
    return "\n".join(lines)
