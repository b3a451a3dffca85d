"""Sorted rule lists: a price move finds the rules it concerns by bisection, so the cost of a
push depends on the rules that fire, not on the ones that do not."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from decimal import Decimal

from alerts.engine.armed import Armed


class SortedRules:
    """Rules keyed by a decimal (a level, a threshold), in key order."""

    __slots__ = ("keys", "rules")

    def __init__(self) -> None:
        self.keys: list[Decimal] = []
        self.rules: list[Armed] = []

    def __len__(self) -> int:
        return len(self.rules)

    def add(self, key: Decimal, rule: Armed) -> None:
        """Insert `rule` under `key`."""
        i = bisect_right(self.keys, key)
        self.keys.insert(i, key)
        self.rules.insert(i, rule)

    def append(self, key: Decimal, rule: Armed) -> None:
        """Add without keeping order: for bulk loads, which call `sort()` once at the end."""
        self.keys.append(key)
        self.rules.append(rule)

    def sort(self) -> None:
        """Restore key order after `append`s."""
        order = sorted(range(len(self.keys)), key=self.keys.__getitem__)
        self.keys = [self.keys[i] for i in order]
        self.rules = [self.rules[i] for i in order]

    def remove(self, key: Decimal, rule: Armed) -> bool:
        """Take `rule` out from under `key`; False if it was not there."""
        i, j = bisect_left(self.keys, key), bisect_right(self.keys, key)
        for k in range(i, j):
            if self.rules[k] is rule:
                del self.keys[k]
                del self.rules[k]
                return True
        return False

    def within(self, low: Decimal, high: Decimal) -> list[Armed]:
        """Rules with low <= key <= high."""
        return self.rules[bisect_left(self.keys, low) : bisect_right(self.keys, high)]

    def from_up_to(self, low: Decimal, high: Decimal) -> list[Armed]:
        """Rules with low <= key < high."""
        return self.rules[bisect_left(self.keys, low) : bisect_left(self.keys, high)]

    def at_most(self, key: Decimal) -> list[Armed]:
        """Rules with key' <= key."""
        return self.rules[: bisect_right(self.keys, key)]

    def below(self, key: Decimal) -> list[Armed]:
        """Rules with key' < key."""
        return self.rules[: bisect_left(self.keys, key)]

    def above(self, key: Decimal) -> list[Armed]:
        """Rules with key' > key."""
        return self.rules[bisect_right(self.keys, key) :]


class Window:
    """The lowest and highest price of a trailing time window, in amortized O(1) per push."""

    __slots__ = ("highs", "lows", "seconds")

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds
        self.lows: deque[tuple[float, Decimal]] = deque()
        self.highs: deque[tuple[float, Decimal]] = deque()

    def push(self, now: float, price: Decimal) -> tuple[Decimal, Decimal]:
        """Add a price seen at `now`; return (lowest, highest) over the window, it included."""
        lows, highs = self.lows, self.highs
        while lows and lows[-1][1] >= price:
            lows.pop()
        lows.append((now, price))
        while highs and highs[-1][1] <= price:
            highs.pop()
        highs.append((now, price))
        cutoff = now - self.seconds
        while lows[0][0] < cutoff:
            lows.popleft()
        while highs[0][0] < cutoff:
            highs.popleft()
        return lows[0][1], highs[0][1]
