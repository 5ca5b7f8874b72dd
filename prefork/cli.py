"""The ``prefork`` command: argv -> Settings -> Arbiter; returns the process exit status.

Exit statuses: 0 stopped normally, 1 configuration or bind error, 2 command-line error (argparse),
3 the application could not be loaded.
"""

from __future__ import annotations

import os
import sys

from .arbiter import Arbiter
from .config import ConfigError, describe, load
from .exits import EXIT_APP_LOAD, EXIT_CONFIG
from .loader import AppLoadError, load_app, parse_app_uri
from .logs import configure_logging, unwritable_log_paths
from .process import daemonize, resolve_user
from .sockets import BindError, bind


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("status", "top"):
        from .statuscli import main as status_main

        return status_main(argv)
    try:
        settings, meta = load(argv)
    except ConfigError as exc:
        print(f"prefork: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if meta.print_config:
        print(describe(settings))
        return 0
    problems = unwritable_log_paths(settings)
    if problems:
        for problem in problems:
            print(f"prefork: error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    statsd = None
    try:
        if settings.statsd_host:
            from .statsd import Statsd

            statsd = Statsd(settings.statsd_host, settings.statsd_prefix, settings.dogstatsd_tags)
        log = configure_logging(settings, statsd)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        print(f"prefork: error: cannot set up logging: {exc!r}", file=sys.stderr)
        return EXIT_CONFIG
    for warning in meta.warnings:
        log.warning("%s", warning)
    for assignment in settings.raw_env:
        key, _, value = assignment.partition("=")
        os.environ[key] = value
    if settings.pythonpath:
        sys.path[:0] = [path.strip() for path in settings.pythonpath.split(",") if path.strip()]
    if settings.chdir:
        try:
            os.chdir(settings.chdir)
        except OSError as exc:
            log.error("Cannot change to directory %s: %s", settings.chdir, exc.strerror)
            return EXIT_CONFIG
    try:
        parse_app_uri(settings.app_uri)
    except AppLoadError as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    if meta.check_config:
        code = check_config(settings, log)
        return code or (EXIT_CONFIG if meta.warnings and meta.strict_config else 0)
    if settings.daemon:
        daemonize()
    return Arbiter(settings, log, argv, statsd).run()


def check_config(settings, log) -> int:
    """--check-config: users, binds and the application import, without serving. 0 = all good."""
    try:
        resolve_user(settings.user, settings.group)
        for address in settings.bind:
            bind(address, 1).close()
        if settings.certfile:
            from .tls import server_context  # ssl weighs 5 MB in every process: only with --certfile

            server_context(settings)
    except (ValueError, BindError, OSError) as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    try:
        load_app(settings.app_uri, settings.raw_paste_global_conf)
    except AppLoadError as exc:
        log.error("Failed to load application %r: %s", settings.app_uri, exc)
        return EXIT_APP_LOAD
    log.info("Configuration OK: %s", settings.app_uri)
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
