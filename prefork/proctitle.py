"""Process titles (``prefork: master [app]``) through setproctitle when it is installed."""

try:
    from setproctitle import setproctitle as _setproctitle
except ImportError:  # pragma: no cover - setproctitle is a declared dependency; titles are cosmetic
    _setproctitle = None  # type: ignore[assignment]


def set_title(text: str) -> None:
    if _setproctitle is not None:
        _setproctitle(f"prefork: {text}")
