"""The differential fuzz habit (issue G), bounded for CI: see tests/fuzzing.py for long runs."""

from __future__ import annotations

import pytest

from fuzzing import run

pytest.importorskip("h11")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_parse_head_against_h11_and_under_every_split(seed):
    problems = run(3000, seed)
    assert not problems, "\n".join(f"{problem}: {raw!r}" for raw, problem in problems[:10])
