"""Evaluation: (event, rules, state, now) -> hits, with no I/O.

The `Evaluator` holds the enabled rules in per-symbol indexes and the little state the rules
need (last price per symbol and source, trailing windows, previous spreads; balances and
reported order statuses are with the account rules, in `alerts.engine.accounts`). A
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
from alerts.domain.values import format_decimal as fmt
from alerts.engine.accounts import AccountRules
from alerts.engine.armed import Armed
from alerts.engine.index import SortedRules, Window

_HUNDRED = Decimal(100)
_SOURCES = ("last", "bid", "ask")
Key = tuple[str, str]
_EMPTY = SortedRules()


def _inside(rule: Armed, price: Decimal) -> bool:
    assert rule.a is not None
    assert rule.b is not None
    return rule.a <= price <= rule.b


def _crossing(
    rule: Armed, previous: Decimal, price: Decimal, now: datetime, gap: bool
) -> Hit | None:
    """A price_cross or price_range rule's hit as the price went from `previous` to `price`."""
    values = {"symbol": rule.symbol or "", "price": fmt(price), "source": rule.source}
    values["previous"] = fmt(previous)
    assert rule.a is not None
    if rule.kind is RuleKind.PRICE_CROSS:
        level = rule.a
        if previous < level <= price:
            way = "up"
        elif price <= level < previous:
            way = "down"
        else:
            return None
        if rule.mode != "any" and rule.mode != way:
            return None
        values.update(level=fmt(level), direction=way)
    else:
        was, now_in = _inside(rule, previous), _inside(rule, price)
        if was == now_in:
            return None
        edge = "enter" if now_in else "exit"
        if rule.mode != "any" and rule.mode != edge:
            return None
        assert rule.b is not None
        values.update(low=fmt(rule.a), high=fmt(rule.b), direction=edge)
    return rule.fire(now, values, after_gap=gap)


class Evaluator:
    """The rule index and the evaluation of every kind of feed event."""

    def __init__(self) -> None:
        self.rules: dict[int, Armed] = {}
        self.prices: dict[Key, Decimal] = {}
        self.accounts = AccountRules()
        self.gaps: set[str] = set()
        self.disarmed: list[Armed] = []
        # (rule id, error) of rules skipped by an error, for the caller to collect.
        self.skipped: list[tuple[int, str]] = []
        self.failed_events = 0
        self._levels: dict[Key, SortedRules] = {}
        self._percent: dict[Key, dict[tuple[int, str], SortedRules]] = {}
        self._windows: dict[tuple[str, str, int], Window] = {}
        self._candles: dict[tuple[str, str, str], SortedRules] = {}
        self._last_candle: dict[tuple[str, str], int] = {}
        self._trades: dict[tuple[str, str], SortedRules] = {}
        self._spreads: dict[str, SortedRules] = {}
        self._spread_prev: dict[str, Decimal] = {}

    # --- the index ---------------------------------------------------------------------

    def _slots(self, rule: Armed) -> Iterable[tuple[SortedRules, Decimal]]:
        kind, symbol = rule.kind, rule.symbol or ""
        if kind is RuleKind.PRICE_CROSS or kind is RuleKind.PRICE_RANGE:
            index = self._levels.setdefault((symbol, rule.source), SortedRules())
            assert rule.a is not None
            yield index, rule.a
            if rule.b is not None:
                yield index, rule.b
        elif kind is RuleKind.PERCENT_CHANGE:
            groups = self._percent.setdefault((symbol, rule.source), {})
            assert rule.a is not None
            yield groups.setdefault((rule.window, rule.mode or "any"), SortedRules()), rule.a
        elif kind is RuleKind.CANDLE_CLOSE:
            key = (symbol, str(rule.extra), str(rule.mode))
            assert rule.a is not None
            yield self._candles.setdefault(key, SortedRules()), rule.a
        elif kind is RuleKind.LARGE_TRADE:
            by = "quantity" if rule.a is not None else "notional"
            threshold = rule.a if rule.a is not None else rule.b
            assert threshold is not None
            yield self._trades.setdefault((symbol, by), SortedRules()), threshold
        elif kind is RuleKind.SPREAD:
            assert rule.a is not None
            yield self._spreads.setdefault(symbol, SortedRules()), rule.a

    def add(self, rule: Armed) -> None:
        """Arm a rule (replacing any rule with its id)."""
        self.remove(rule.id)
        self.rules[rule.id] = rule
        if rule.kind in (RuleKind.ORDER, RuleKind.BALANCE):
            self.accounts.add(rule)
            return
        for index, key in self._slots(rule):
            index.add(key, rule)

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
            for index, key in self._slots(rule):
                index.append(key, rule)
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
        for index, key in self._slots(rule):
            index.remove(key, rule)
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
            return self._trade(event, now)
        if isinstance(event, OrderBook):
            return self._book(event, now)
        if isinstance(event, Candle):
            return self._candle(event, now)
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
        symbol, hits = event.symbol, []
        gap = symbol in self.gaps
        t = now.timestamp()
        seen: list[tuple[Key, Decimal]] = []
        for source, price in zip(_SOURCES, (event.last, event.bid, event.ask), strict=True):
            if price is None:
                continue
            key = (symbol, source)
            previous = self.prices.get(key)
            if previous is not None and previous != price:
                index = self._levels.get(key)
                if index is not None and index.rules:
                    hits += self._crossings(index, previous, price, t, now, gap)
            groups = self._percent.get(key)
            if groups:
                hits += self._moves(symbol, source, groups, price, t, now)
            seen.append((key, price))
        # Evaluated: only now do the prices move on (and the gap, if any, is over).
        self.prices.update(seen)
        if gap:
            self.gaps.discard(symbol)
        return hits

    def _crossings(
        self,
        index: SortedRules,
        previous: Decimal,
        price: Decimal,
        t: float,
        now: datetime,
        gap: bool,
    ) -> list[Hit]:
        low, high = (previous, price) if previous < price else (price, previous)
        hits: list[Hit] = []
        seen: set[int] = set()
        for rule in index.within(low, high):
            if rule.id in seen or not rule.may_fire(t):
                continue
            seen.add(rule.id)
            try:
                hit = _crossing(rule, previous, price, now, gap)
            except Exception as exc:  # noqa: BLE001  (this rule's failure only)
                self._skip([rule], exc)
                continue
            if hit is not None:
                hits.append(hit)
        return hits

    def _moves(
        self,
        symbol: str,
        source: str,
        groups: dict[tuple[int, str], SortedRules],
        price: Decimal,
        t: float,
        now: datetime,
    ) -> list[Hit]:
        hits: list[Hit] = []
        extremes: dict[int, tuple[Decimal, Decimal]] = {}
        for (seconds, direction), index in groups.items():
            if not index.rules:
                continue
            try:
                if seconds not in extremes:
                    window = self._windows.get((symbol, source, seconds))
                    if window is None:
                        window = self._windows[(symbol, source, seconds)] = Window(seconds)
                    extremes[seconds] = window.push(t, price)
                lowest, highest = extremes[seconds]
                rise = (price - lowest) / lowest * _HUNDRED if lowest > 0 else Decimal(0)
                fall = (highest - price) / highest * _HUNDRED if highest > 0 else Decimal(0)
                if direction == "up" or (direction == "any" and rise >= fall):
                    move, reference, way = rise, lowest, "up"
                else:
                    move, reference, way = fall, highest, "down"
                if move <= 0:
                    continue
                candidates = index.at_most(move)
            except Exception as exc:  # noqa: BLE001  (the rules of this window only)
                self._skip(index.rules, exc)
                continue
            for rule in candidates:
                if not rule.may_fire(t):
                    continue
                try:
                    signed = move if way == "up" else -move
                    values = {
                        "symbol": symbol,
                        "price": fmt(price),
                        "source": source,
                        "percent": fmt(rule.a or Decimal(0)),
                        "change": fmt(signed.quantize(Decimal("0.01"))),
                        "window": str(seconds),
                        "direction": way,
                        "reference": fmt(reference),
                    }
                    hits.append(rule.fire(now, values))
                except Exception as exc:  # noqa: BLE001  (this rule's failure only)
                    self._skip([rule], exc)
        return hits

    def _trade(self, event: Trade, now: datetime) -> list[Hit]:
        hits: list[Hit] = []
        t, notional = now.timestamp(), event.notional
        side = event.side.value if event.side is not None else None
        candidates = [
            *self._trades.get((event.symbol, "quantity"), _EMPTY).at_most(event.quantity),
            *self._trades.get((event.symbol, "notional"), _EMPTY).at_most(notional),
        ]
        for rule in candidates:
            if rule.b is not None and notional < rule.b:
                continue
            if rule.mode is not None and rule.mode != side:
                continue
            if not rule.may_fire(t):
                continue
            try:
                values = {
                    "symbol": event.symbol,
                    "price": fmt(event.price),
                    "quantity": fmt(event.quantity),
                    "notional": fmt(notional),
                    "side": side or "",
                }
                hits.append(rule.fire(now, values, dedup=event.trade_id))
            except Exception as exc:  # noqa: BLE001  (this rule's failure only)
                self._skip([rule], exc)
        return hits

    def _book(self, event: OrderBook, now: datetime) -> list[Hit]:
        bid, ask = event.best_bid, event.best_ask
        if bid is None or ask is None or bid + ask <= 0:
            return []
        spread = (ask - bid) / ((ask + bid) / 2) * _HUNDRED
        previous = self._spread_prev.get(event.symbol, Decimal(0))
        self._spread_prev[event.symbol] = spread
        index = self._spreads.get(event.symbol)
        if index is None or spread <= previous:
            return []
        t, hits = now.timestamp(), []
        for rule in index.from_up_to(previous, spread):
            if not rule.may_fire(t):
                continue
            try:
                values = {
                    "symbol": event.symbol,
                    "bid": fmt(bid),
                    "ask": fmt(ask),
                    "spread": fmt(ask - bid),
                    "percent": fmt(spread.quantize(Decimal("0.0001"))),
                }
                hits.append(rule.fire(now, values))
            except Exception as exc:  # noqa: BLE001  (this rule's failure only)
                self._skip([rule], exc)
        return hits

    def _candle(self, event: Candle, now: datetime) -> list[Hit]:
        if not event.closed:
            return []
        opened = event.open_time or event.close_time or 0
        seen_key = (event.symbol, event.interval)
        if self._last_candle.get(seen_key, -1) >= opened:
            return []  # the same closed candle again (a snapshot after a resubscribe)
        self._last_candle[seen_key] = opened
        t, hits = now.timestamp(), []
        above = self._candles.get((event.symbol, event.interval, "above"))
        below = self._candles.get((event.symbol, event.interval, "below"))
        candidates = [
            *(above.below(event.close) if above else []),
            *(below.above(event.close) if below else []),
        ]
        for rule in candidates:
            if not rule.may_fire(t):
                continue
            try:
                values = {
                    "symbol": event.symbol,
                    "price": fmt(event.close),
                    "close": fmt(event.close),
                    "open": fmt(event.open),
                    "interval": event.interval,
                    "level": fmt(rule.a or Decimal(0)),
                    "direction": str(rule.mode),
                }
                hits.append(rule.fire(now, values, dedup=f"{event.interval}:{opened}"))
            except Exception as exc:  # noqa: BLE001  (this rule's failure only)
                self._skip([rule], exc)
        return hits
