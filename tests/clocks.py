"""A clock a test sets by hand, for the parts that take one (`clock=`)."""

from __future__ import annotations

from datetime import datetime


class Clock:
    """Answers `now`, which the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now
