"""Generate docs/settings.md from the settings registry: ``python -m prefork.docs > docs/settings.md``,
and the master's signal table in docs/signals.md from ``signal_table.py``:
``python -m prefork.docs --signals docs/signals.md`` (rewrites the table in place).

Tests regenerate both and fail when the committed files differ, so the references cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .compat import IGNORED, REFUSED
from .settings import SETTINGS, env_name
from .signal_table import signals_table

TABLE_START = "| signal |"  # the signals page's table runs from this line to the next blank line


def settings_markdown() -> str:
    lines = [
        "# Settings reference",
        "",
        "Generated from `prefork/settings.py` by `python -m prefork.docs`; do not edit by hand.",
        "",
        "Every setting can be given, in rising precedence, as: a default; a name in the config file",
        "(`-c FILE`, default `./prefork.conf.py`; gunicorn's names); an environment variable",
        "`PREFORK_<NAME>` (or inside `PREFORK_CMD_ARGS`, a shell-quoted command line); a command-line flag.",
        "`WEB_CONCURRENCY` and `PORT` are honoured as in gunicorn (as defaults).",
        "`prefork --print-config` shows every effective value and where it came from.",
        "",
    ]
    section = None
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            lines += [f"## {section}", ""]
        lines += [f"### `{setting.name}`", "", setting.doc, ""]
        if setting.hook:
            lines += ["- config file only", ""]
            continue
        flags = ", ".join(f"`{flag}`" for flag in setting.flags) or "(config file or environment only)"
        lines += [
            f"- command line: {flags}",
            f"- environment: `{env_name(setting)}`",
            f"- default: `{setting.default!r}`",
            f"- applied by a reload (HUP): {'yes' if setting.hup else 'no, needs a restart'}",
            "",
        ]
    lines += [
        "## gunicorn settings prefork refuses",
        "",
        "Refused with the reason, unless the value asks for nothing (`False`, empty, or the harmless value shown).",
        "",
        "| setting | flags | why | accepted values |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{c.name}` | {' '.join(c.flags) or '-'} | {c.reason} | {', '.join(map(repr, c.harmless)) or '-'} |"
        for c in sorted(REFUSED.values())
    ]
    lines += ["", "## gunicorn settings accepted and ignored", "", "| setting | flags | why |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {' '.join(c.flags) or '-'} | {c.reason} |" for c in sorted(IGNORED.values())]
    return "\n".join(lines) + "\n"


def with_signals_table(page: str) -> str:
    """``page`` (docs/signals.md) with its master signals table regenerated."""
    start = page.index(TABLE_START)
    end = page.index("\n\n", start) + 1
    return page[:start] + signals_table() + page[end:]


if __name__ == "__main__":
    if sys.argv[1:2] == ["--signals"]:
        path = Path(sys.argv[2])
        path.write_text(with_signals_table(path.read_text()))
    else:
        print(settings_markdown(), end="")
