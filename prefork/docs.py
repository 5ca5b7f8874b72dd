"""Generate docs/settings.md from the settings registry: ``python -m prefork.docs > docs/settings.md``.

A test regenerates it and fails when the committed file differs, so the reference cannot drift.
"""

from __future__ import annotations

from .compat import IGNORED, REFUSED
from .settings import SETTINGS, env_name


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
    lines += ["## gunicorn settings prefork refuses", "",
              "Refused with the reason, unless the value asks for nothing (`False`, empty, or the harmless "
              "value shown).", "", "| setting | flags | why | accepted values |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {' '.join(c.flags) or '-'} | {c.reason} | {', '.join(map(repr, c.harmless)) or '-'} |"
              for c in sorted(REFUSED.values())]
    lines += ["", "## gunicorn settings accepted and ignored", "", "| setting | flags | why |", "|---|---|---|"]
    lines += [f"| `{c.name}` | {' '.join(c.flags) or '-'} | {c.reason} |" for c in sorted(IGNORED.values())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_markdown(), end="")
