"""Subscriptions the exchange refused, and when to ask again.

Each refused subscription is retried with exponential backoff (a minute, doubling up to an
hour), and all such retries together are at most `per_window` a `window` (a minute): a
hundred rules on symbols the exchange does not list then cost a few requests a minute, not
a flood that could get the shared connection rate-limited for everyone. A refusal that
names the symbol (not found, not available, not open) also gives the symbol a status that
the rules on it show, until a subscription to it succeeds. Pure bookkeeping: the engine
tells it what happened and asks it what to do; the clock is injected.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from alerts.feed import Subscription
from alerts.feed.backoff import Backoff
from alerts.feed.errors import (
    RequestRejected,
    SymbolIncorrect,
    SymbolNotFound,
    SymbolNotOpened,
    SymbolUnavailable,
)

NOT_FOUND = "symbol not found on the exchange"
_STATUSES: tuple[tuple[type[RequestRejected], str], ...] = (
    (SymbolNotFound, NOT_FOUND),
    (SymbolIncorrect, NOT_FOUND),
    (SymbolNotOpened, "trading in this symbol is not open on the exchange"),
    (SymbolUnavailable, "symbol not available on the exchange"),
)


def symbol_status(exc: RequestRejected) -> str | None:
    """What a refusal says about its symbol, for the rules on it; None if nothing."""
    return next((text for cls, text in _STATUSES if isinstance(exc, cls)), None)


@dataclass(slots=True)
class _Refusal:
    attempts: int
    retry_at: float


@dataclass
class Refusals:
    """The refused subscriptions, the retry budget, and the symbol statuses to report."""

    backoff: Backoff = field(
        default_factory=lambda: Backoff(initial=60.0, maximum=3600.0, factor=2.0, jitter=0.1)
    )
    per_window: int = 5
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    # Symbol -> status to store (a refusal), or None to clear it (a success); the engine
    # writes these and empties the dict.
    to_report: dict[str, str | None] = field(default_factory=dict)
    _refused: dict[Subscription, _Refusal] = field(default_factory=dict)
    _symbols: dict[str, str] = field(default_factory=dict)
    _retries: deque[float] = field(default_factory=deque)

    def __contains__(self, sub: Subscription) -> bool:
        return sub in self._refused

    def refused(self, sub: Subscription, exc: RequestRejected) -> None:
        """The exchange refused `sub`: back off before asking again."""
        previous = self._refused.get(sub)
        attempts = 1 if previous is None else previous.attempts + 1
        delay = self.backoff.delay(attempts - 1, self.rng)
        self._refused[sub] = _Refusal(attempts, self.clock() + delay)
        status = symbol_status(exc)
        if sub.symbol is not None and status is not None and sub.symbol not in self._symbols:
            self._symbols[sub.symbol] = status
            self.to_report[sub.symbol] = status

    def subscribed(self, sub: Subscription) -> None:
        """`sub` went through: no more backing off, and its symbol is fine."""
        self._refused.pop(sub, None)
        if sub.symbol is not None and self._symbols.pop(sub.symbol, None) is not None:
            self.to_report[sub.symbol] = None

    def forget(self, sub: Subscription) -> None:
        """No rule needs `sub` any more."""
        self._refused.pop(sub, None)

    def may_ask(self, sub: Subscription) -> bool:
        """Whether to send the subscribe request for `sub` now (counted if so)."""
        refusal = self._refused.get(sub)
        if refusal is None:
            return True
        now = self.clock()
        if now < refusal.retry_at:
            return False
        while self._retries and self._retries[0] <= now - self.window:
            self._retries.popleft()
        if len(self._retries) >= self.per_window:
            return False
        self._retries.append(now)
        return True
