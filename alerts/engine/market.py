"""Market rules: price crossings and ranges, percent moves, candle closes, large trades and
spreads, held in per-symbol indexes with the little state they need (trailing windows,
previous spreads, the last closed candle), evaluated with no I/O (part of the `Evaluator`).

A rule whose evaluation raises is handed to `skip` and misses this push; the others' hits
stand. The last prices and the symbols after a gap are the `Evaluator`'s: `ticker` reads
them and returns the prices it saw, for the caller to move on once the push is evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal

from alerts.domain.events import Candle, OrderBook, Ticker, Trade
from alerts.domain.hits import Hit
from alerts.domain.rules import RuleKind
from alerts.domain.values import format_decimal as fmt
from alerts.engine.accounts import Skip
from alerts.engine.armed import Armed
from alerts.engine.crossing import crossing
from alerts.engine.index import SortedRules, Window
from alerts.engine.rearm import Waiting

_HUNDRED = Decimal(100)
_SOURCES = ("last", "bid", "ask")
Key = tuple[str, str]
"""(symbol, price source): what a last price is kept by."""
_EMPTY = SortedRules()


class MarketRules:
    """The armed market rules in per-symbol indexes, and the state their kinds keep."""

    def __init__(self) -> None:
        self._levels: dict[Key, SortedRules] = {}
        self._percent: dict[Key, dict[tuple[int, str], SortedRules]] = {}
        self._windows: dict[tuple[str, str, int], Window] = {}
        self._candles: dict[tuple[str, str, str], SortedRules] = {}
        self._last_candle: dict[tuple[str, str], int] = {}
        self._trades: dict[tuple[str, str], SortedRules] = {}
        self._spreads: dict[str, SortedRules] = {}
        self._spread_prev: dict[str, Decimal] = {}
        self.waiting = Waiting()  # rules that fired and wait to re-arm

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
        """Index a market rule, in key order."""
        for index, key in self._slots(rule):
            index.add(key, rule)
        self.waiting.watch(rule)

    def append(self, rule: Armed) -> list[SortedRules]:
        """Index a market rule unsorted (a bulk load); returns the indexes to sort after."""
        indexes: list[SortedRules] = []
        for index, key in self._slots(rule):
            index.append(key, rule)
            indexes.append(index)
        self.waiting.watch(rule)
        return indexes

    def remove(self, rule: Armed) -> None:
        """Take a market rule out of its indexes."""
        for index, key in self._slots(rule):
            index.remove(key, rule)
        self.waiting.forget(rule)

    # --- evaluation --------------------------------------------------------------------

    def ticker(
        self, event: Ticker, now: datetime, prices: Mapping[Key, Decimal], gap: bool, skip: Skip
    ) -> tuple[list[Hit], list[tuple[Key, Decimal]]]:
        """The hits of a ticker against the last `prices`, and the prices it brings."""
        symbol, hits = event.symbol, []
        t = now.timestamp()
        seen: list[tuple[Key, Decimal]] = []
        for source, price in zip(_SOURCES, (event.last, event.bid, event.ask), strict=True):
            if price is None:
                continue
            key = (symbol, source)
            previous = prices.get(key)
            if previous is not None and previous != price:
                index = self._levels.get(key)
                if index is not None and index.rules:
                    hits += self._crossings(index, previous, price, t, now, gap, skip)
                self.waiting.check(key, price)  # after the crossings: a hit never re-arms
            groups = self._percent.get(key)
            if groups:
                hits += self._moves(symbol, source, groups, price, t, now, skip)
            seen.append((key, price))
        return hits, seen

    def _crossings(
        self,
        index: SortedRules,
        previous: Decimal,
        price: Decimal,
        t: float,
        now: datetime,
        gap: bool,
        skip: Skip,
    ) -> list[Hit]:
        low, high = (previous, price) if previous < price else (price, previous)
        hits: list[Hit] = []
        seen: set[int] = set()
        for rule in index.within(low, high):
            if rule.id in seen or not rule.may_fire(t):
                continue
            seen.add(rule.id)
            try:
                hit = crossing(rule, previous, price, now, gap)
            except Exception as exc:  # noqa: BLE001  (this rule's failure only)
                skip([rule], exc)
                continue
            if hit is not None:
                hits.append(hit)
                self.waiting.watch(rule)
        return hits

    def _moves(
        self,
        symbol: str,
        source: str,
        groups: dict[tuple[int, str], SortedRules],
        price: Decimal,
        t: float,
        now: datetime,
        skip: Skip,
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
                skip(index.rules, exc)
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
                    skip([rule], exc)
        return hits

    def trade(self, event: Trade, now: datetime, skip: Skip) -> list[Hit]:
        """The large_trade hits of a trade."""
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
                skip([rule], exc)
        return hits

    def book(self, event: OrderBook, now: datetime, skip: Skip) -> list[Hit]:
        """The spread hits of an order book, as its spread widens past their levels."""
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
                skip([rule], exc)
        return hits

    def candle(self, event: Candle, now: datetime, skip: Skip) -> list[Hit]:
        """The candle_close hits of a closed candle (each candle once)."""
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
                skip([rule], exc)
        return hits
