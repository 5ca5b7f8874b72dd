"""The ``prefork`` command: argv -> Settings -> Arbiter; returns the process exit status.

Exit statuses: 0 stopped normally, 1 configuration or bind error, 2 command-line error (argparse),
3 the application could not be loaded.
"""

from __future__ import annotations

import os
import sys

from .arbiter import EXIT_CONFIG, Arbiter
from .loader import AppLoadError, parse_app_uri
from .logs import setup_error_log
from .settings import parse_args


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    log = setup_error_log(settings.errorlog, settings.loglevel)
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
    return Arbiter(settings, log).run()


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
