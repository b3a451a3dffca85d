"""What the armed rules need from the exchange: how many rules want each public channel and
each account, so that the engine subscribes to exactly that."""

from __future__ import annotations

from collections import Counter

from alerts.domain.rules import RuleKind
from alerts.engine.armed import Armed
from alerts.feed import Subscription


def subscription_for(rule: Armed, depth: int) -> Subscription | None:
    """The public channel a market rule needs (None for account rules)."""
    symbol, kind = rule.symbol or "", rule.kind
    if kind in (RuleKind.PRICE_CROSS, RuleKind.PRICE_RANGE, RuleKind.PERCENT_CHANGE):
        return Subscription.ticker(symbol)
    if kind is RuleKind.CANDLE_CLOSE:
        return Subscription.candles(symbol, str(rule.extra))
    if kind is RuleKind.LARGE_TRADE:
        return Subscription.trades(symbol)
    if kind is RuleKind.SPREAD:
        return Subscription.orderbook(symbol, depth)
    return None


class Wanted:
    """Rules counted per channel and per account as they are armed and disarmed."""

    def __init__(self, orderbook_depth: int) -> None:
        self.depth = orderbook_depth
        self._subs: Counter[Subscription] = Counter()
        self._accounts: Counter[int] = Counter()
        # A million rules share a few thousand channels: each made once.
        self._cache: dict[tuple[object, ...], Subscription | None] = {}

    def count(self, rule: Armed, delta: int) -> None:
        """One rule more (1) or less (-1) wants what `rule` needs."""
        if rule.account is not None:
            self._accounts[rule.account] += delta
            return
        key = (rule.kind, rule.symbol, rule.extra)
        sub = self._cache.get(key)
        if sub is None:
            sub = self._cache[key] = subscription_for(rule, self.depth)
        if sub is not None:
            self._subs[sub] += delta

    def channels(self) -> set[Subscription]:
        """The public channels some rule wants."""
        return {sub for sub, n in self._subs.items() if n > 0}

    def accounts(self) -> set[int]:
        """The accounts some rule wants."""
        return {a for a, n in self._accounts.items() if n > 0}

    def drop_unwanted(self) -> list[Subscription]:
        """Forget the channels no rule wants any more; which they were."""
        gone = [s for s, n in self._subs.items() if n <= 0]
        for sub in gone:
            del self._subs[sub]
        return gone
