"""``python -m prefork``: the same as the ``prefork`` command."""

from .cli import run

run()
