"""Capped, jittered exponential backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass

# Beyond this exponent every delay is capped anyway; stop before floats overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before attempt n (0-based): initial * factor**n, capped, less up to `jitter` of it."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("backoff jitter must be in [0, 1)")

    def base(self, attempt: int) -> float:
        """The un-jittered delay before attempt `attempt`."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        return min(self.maximum, self.initial * self.factor**exponent)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The jittered delay before attempt `attempt`, in seconds."""
        # Jitter only shortens the delay, so the cap stays a hard upper bound.
        spread = (rng or random).random() * self.jitter
        return self.base(attempt) * (1 - spread)
