"""The master's signals in one table: the arbiter installs its handlers from it and docs/signals.md
renders it (``python -m prefork.docs --signals``; a test fails when the committed page drifts)."""

from __future__ import annotations

import signal
from typing import NamedTuple


class MasterSignal(NamedTuple):
    names: tuple[str, ...]  # without the SIG prefix; the arbiter runs handle_<name lower-cased>()
    meaning: str
    versus_gunicorn: str


MASTER_SIGNALS = (
    MasterSignal(
        ("TERM",),
        "Graceful stop. With `--shutdown-delay S`, keep serving S seconds while telling "
        "systemd STOPPING. Then the master closes its copies of the listening sockets and sends TERM "
        "to the workers; each worker accepts what already waits in the kernel accept queue, closes its "
        "copies, finishes requests in progress (their responses say `Connection: close`), answers the "
        "next request on each idle keep-alive connection with `Connection: close` (or closes it when "
        "`--keep-alive` expires, as usual), and exits. Closing idle connections at once would race with "
        "clients already sending on them, and clients that do not retry (python-requests, locust) would "
        "lose that request on every reload. Workers still running after `--graceful-timeout` are killed.",
        "gunicorn drops the accept queue (#3397); `--shutdown-delay` is ours",
    ),
    MasterSignal(
        ("INT", "QUIT"),
        "Fast stop: workers exit at once (QUIT), the master waits at most `--graceful-timeout`, then SIGKILL.",
        "same",
    ),
    MasterSignal(
        ("HUP",),
        "Reload: start a new generation of workers (new code, since the master never "
        "imported the app), wait until **each** reports READY, then retire the old generation "
        "gracefully. If the new generation fails to boot, it is abandoned, the old one keeps serving, "
        "and the reason is logged. With `--preload`, the master re-executes itself in place (same PID, "
        "same sockets), loads the new code, starts its workers and only then drains the old ones.",
        "gunicorn starts new workers without waiting for readiness, does not reload code with "
        "`--preload` (#2449), and halts when the new workers fail to boot",
    ),
    MasterSignal(
        ("USR1",), "Reopen the log files (master, then workers at their next housekeeping pass, within 0.5 s).", "same"
    ),
    MasterSignal(
        ("USR2",),
        "Binary upgrade: fork and exec the same command line; the new master inherits the "
        "listening sockets (`PREFORK_FDS`), writes the pidfile (the old one becomes `<pidfile>.oldbin`) "
        "and, under systemd, sends `MAINPID=`. Both generations serve until the old master is told to "
        "stop.",
        "same protocol",
    ),
    MasterSignal(
        ("WINCH",),
        "After a `USR2`: retire this master's workers, keep the master (to fall back to). Ignored otherwise.",
        "gunicorn applies it only when daemonized",
    ),
    MasterSignal(
        ("TTIN", "TTOU"),
        "One worker more / less (never fewer than one). Signals sent twice before "
        "delivery merge into one, as for every process.",
        "same",
    ),
    MasterSignal(
        ("CHLD",),
        "Reap: workers, an upgraded master that failed, and — when prefork runs as PID 1 "
        "in a container — every orphan.",
        "—",
    ),
)

HANDLED_SIGNALS = tuple(getattr(signal, "SIG" + name) for row in MASTER_SIGNALS for name in row.names)


def signals_table() -> str:
    """The master's signals as a markdown table."""
    lines = ["| signal | what prefork does | differs from gunicorn? |", "|---|---|---|"]
    for row in MASTER_SIGNALS:
        names = ", ".join(f"`{name}`" for name in row.names)
        lines.append(f"| {names} | {row.meaning} | {row.versus_gunicorn} |")
    return "\n".join(lines) + "\n"
