"""Evaluation: (event, rules, state, now) -> hits, with no I/O.

The `Evaluator` holds the enabled rules in per-symbol indexes and the little state the rules
need (last price per symbol and source, trailing windows, previous spreads; balances and
reported order statuses are with the account rules, in `alerts.engine.accounts`; the
market rules' indexes and windows are in `alerts.engine.market`). A
rule that fires with trigger `once` leaves the index at once, so it cannot fire twice while
its firing is being recorded.

One rule's failure is that rule's alone: an exception while evaluating it (arithmetic no
bound foresaw, a bug) skips it for this push and is listed in `skipped` for the caller to
count and log, and every other rule's hits stand. A symbol's last prices move on only once
its push has been evaluated, so an event that fails as a whole leaves them where they were
and the next push still finds the crossing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from alerts.domain.events import BalanceUpdate, Candle, FeedEvent, Order, OrderBook, Ticker, Trade
from alerts.domain.hits import Hit
from alerts.domain.rules import RuleKind
from alerts.engine.accounts import AccountRules
from alerts.engine.armed import Armed
from alerts.engine.index import SortedRules
from alerts.engine.market import Key, MarketRules


class Evaluator:
    """The rule index and the evaluation of every kind of feed event."""

    def __init__(self) -> None:
        self.rules: dict[int, Armed] = {}
        self.prices: dict[Key, Decimal] = {}
        self.accounts = AccountRules()
        self.market = MarketRules()
        self.gaps: set[str] = set()
        self.disarmed: list[Armed] = []
        # (rule id, error) of rules skipped by an error, for the caller to collect.
        self.skipped: list[tuple[int, str]] = []
        self.failed_events = 0

    # --- the index ---------------------------------------------------------------------

    def add(self, rule: Armed) -> None:
        """Arm a rule (replacing any rule with its id)."""
        self.remove(rule.id)
        self.rules[rule.id] = rule
        if rule.kind in (RuleKind.ORDER, RuleKind.BALANCE):
            self.accounts.add(rule)
            return
        self.market.add(rule)

    def add_many(self, rules: Iterable[Armed]) -> int:
        """Arm many new rules at once (a start-up load): sorts each index once at the end."""
        touched: set[int] = set()
        indexes: list[SortedRules] = []
        count = 0
        for rule in rules:
            if rule.id in self.rules:
                self.add(rule)
                continue
            self.rules[rule.id] = rule
            count += 1
            if rule.account is not None:
                self.accounts.add(rule)
                continue
            for index in self.market.append(rule):
                if id(index) not in touched:
                    touched.add(id(index))
                    indexes.append(index)
        for index in indexes:
            index.sort()
        return count

    def remove(self, rule_id: int) -> Armed | None:
        """Disarm a rule; returns it, or None if it was not armed. (Rules that `evaluate`
        disarms itself are also listed in `disarmed`, for the caller to collect.)"""
        rule = self.rules.pop(rule_id, None)
        if rule is None:
            return None
        if rule.account is not None:
            self.accounts.remove(rule)
            return rule
        self.market.remove(rule)
        return rule

    # --- evaluation --------------------------------------------------------------------

    def evaluate(self, event: FeedEvent, now: datetime) -> list[Hit]:
        """Every hit `event` causes at `now`; `once` rules that hit are disarmed."""
        try:
            hits = self._hits(event, now)
        except Exception as exc:  # noqa: BLE001  (an event no rule could be blamed for)
            self.failed_events += 1
            self.skipped.append((0, f"{type(event).__name__}: {type(exc).__name__}"))
            return []
        return self._disarm_once(hits)

    def evaluate_late(self, event: Order, now: datetime, late: str) -> list[Hit]:
        """The hits of an order found in the history after a gap, marked late (`late` says
        why: while the connection was down, while the service was stopped)."""
        return self._disarm_once(self.accounts.order(event, now, self._skip, late=late))

    def _disarm_once(self, hits: list[Hit]) -> list[Hit]:
        for hit in hits:
            if hit.once:
                gone = self.remove(hit.rule_id)
                if gone is not None:
                    self.disarmed.append(gone)
        return hits

    def _hits(self, event: FeedEvent, now: datetime) -> list[Hit]:
        if isinstance(event, Ticker):
            return self._ticker(event, now)
        if isinstance(event, Trade):
            return self.market.trade(event, now, self._skip)
        if isinstance(event, OrderBook):
            return self.market.book(event, now, self._skip)
        if isinstance(event, Candle):
            return self.market.candle(event, now, self._skip)
        if isinstance(event, Order):
            return self.accounts.order(event, now, self._skip)
        if isinstance(event, BalanceUpdate):
            return self.accounts.balance(event, now, self._skip)
        return []

    def _skip(self, rules: Sequence[Armed], exc: Exception) -> None:
        """These rules' evaluation raised: they miss this push, the others do not."""
        error = type(exc).__name__
        self.skipped.extend((rule.id, error) for rule in rules)

    def _ticker(self, event: Ticker, now: datetime) -> list[Hit]:
        symbol = event.symbol
        gap = symbol in self.gaps
        hits, seen = self.market.ticker(event, now, self.prices, gap, self._skip)
        # Evaluated: only now do the prices move on (and the gap, if any, is over).
        self.prices.update(seen)
        if gap:
            self.gaps.discard(symbol)
        return hits
