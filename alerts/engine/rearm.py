"""Re-arming: a price_cross or price_range rule with `rearm_percent` (and trigger `every`)
that fired waits until the price has gone back that far past the edge it crossed (the level,
or the range's low or high) before it may fire again, so a price wobbling around a level
alerts once, not at every wobble.

After crossing an edge going up, the rule waits for the price to fall to edge x (1 - r);
going down, to rise to edge x (1 + r). The wait is checked on every price of the rule's
symbol and source, after that push's crossings (so the push that fires never re-arms it
too), and is kept in the rule's stored `state` with the hit that starts it; the recorder
clears it when the rule re-arms (see `Recorder.rearmed`), and a restart checks the waits it
loads against the last price persisted.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from alerts.engine.armed import Armed

Key = tuple[str, str]  # (symbol, price source)
Wait = tuple[Decimal, bool]  # the price to reach, and whether it must fall (True) or rise to it
_ONE = Decimal(1)


def wait_after(rule: Armed, edge: Decimal, up: bool) -> Wait | None:
    """What a rule that crossed `edge` (going up or down) waits for; None without rearm."""
    if rule.rearm is None:
        return None
    return (edge * (_ONE - rule.rearm), True) if up else (edge * (_ONE + rule.rearm), False)


def reached(wait: Wait, price: Decimal) -> bool:
    """Whether `price` ends the wait."""
    threshold, falling = wait
    return price <= threshold if falling else price >= threshold


def stored(wait: Wait) -> dict[str, Any]:
    """The wait as the rule's `state` keeps it (`armed.arm_fields` reads it back)."""
    return {"rearm_at": str(wait[0]), "falling": wait[1]}


class Waiting:
    """The rules waiting to re-arm, by symbol and source; `rearmed` lists the ids of those
    that did, for the runner to hand to the recorder."""

    def __init__(self) -> None:
        self._by_key: dict[Key, dict[int, Armed]] = {}
        self.rearmed: list[int] = []

    def watch(self, rule: Armed) -> None:
        if rule.waiting is not None:
            self._by_key.setdefault((rule.symbol or "", rule.source), {})[rule.id] = rule

    def forget(self, rule: Armed) -> None:
        rules = self._by_key.get((rule.symbol or "", rule.source))
        if rules is not None:
            rules.pop(rule.id, None)

    def recheck(self, prices: dict[Key, Decimal]) -> None:
        """Re-arm the waiting rules whose wait the last known prices end (after a restart)."""
        for key in list(self._by_key):
            price = prices.get(key)
            if price is not None:
                self.check(key, price)

    def check(self, key: Key, price: Decimal) -> None:
        """Re-arm the rules of `key` whose wait `price` ends."""
        rules = self._by_key.get(key)
        if not rules:
            return
        for rule_id, rule in list(rules.items()):
            if rule.waiting is None or reached(rule.waiting, price):
                rule.waiting = None
                del rules[rule_id]
                self.rearmed.append(rule_id)
