"""Backoff grows geometrically, caps, and jitter only shortens it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.feed import Backoff


def test_growth_and_cap() -> None:
    backoff = Backoff(initial=1, maximum=10, factor=2, jitter=0)
    assert [backoff.delay(n) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    assert backoff.delay(10_000) == 10


@given(attempt=st.integers(min_value=0, max_value=10_000), seed=st.integers())
def test_jitter_stays_within_bounds(attempt: int, seed: int) -> None:
    backoff = Backoff(initial=0.1, maximum=5, factor=3, jitter=0.3)
    delay = backoff.delay(attempt, random.Random(seed))
    assert backoff.base(attempt) * 0.7 <= delay <= backoff.base(attempt) <= 5


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"initial": 2, "maximum": 1}, {"factor": 0.5}, {"jitter": 1}],
)
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="backoff"):
        Backoff(**kwargs)
