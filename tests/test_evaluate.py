"""Evaluation of every rule kind and trigger mode, table-driven, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from alerts.domain.events import (
    Balance,
    BalanceUpdate,
    BookLevel,
    Candle,
    OrderBook,
    OrderStatus,
    Side,
    Ticker,
    Trade,
)
from alerts.domain.events import Order as OrderEvent
from alerts.domain.hits import Hit
from alerts.engine.armed import Armed, arm
from alerts.engine.evaluate import Evaluator

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
_ids = iter(range(1, 10**6))


def rule(kind: str, trigger: str = "once", cooldown: int = 0, **params: Any) -> Armed:
    """An armed rule from the fields a user would give."""
    row = {
        "id": next(_ids),
        "user_id": 1,
        "kind": kind,
        "params": params,
        "trigger": trigger,
        "cooldown_seconds": cooldown,
        "expires_at": params.pop("expires_at", None),
        "snoozed_until": params.pop("snoozed_until", None),
        "last_fired_at": None,
    }
    return arm(row)


def evaluator(*rules: Armed) -> Evaluator:
    e = Evaluator()
    for r in rules:
        e.add(r)
    return e


def ticks(e: Evaluator, *prices: str, symbol: str = "BTC-USDT", start: int = 0) -> list[Hit]:
    hits: list[Hit] = []
    for i, p in enumerate(prices):
        hits += e.evaluate(
            Ticker(symbol=symbol, last=Decimal(p)), T0 + timedelta(seconds=start + i)
        )
    return hits


def cross(level: str, **kw: Any) -> Armed:
    return rule("price_cross", symbol="BTC-USDT", level=level, **kw)


@pytest.mark.parametrize(
    ("direction", "prices", "fired"),
    [
        ("up", ["99", "100"], ["up"]),  # reaching the level counts
        ("up", ["99", "101"], ["up"]),
        ("up", ["100", "101"], []),  # starting on the level is not a crossing
        ("up", ["101", "99"], []),
        ("down", ["101", "100"], ["down"]),
        ("down", ["101", "99"], ["down"]),
        ("down", ["99", "101"], []),
        ("any", ["99", "100", "99"], ["up"]),  # back from the level itself: not a crossing
        ("any", ["99", "101", "99"], ["up", "down"]),
        ("any", ["100", "100", "100"], []),
    ],
)
def test_price_cross_semantics(direction: str, prices: list[str], fired: list[str]) -> None:
    e = evaluator(cross("100", trigger="every", direction=direction))
    assert [h.values["direction"] for h in ticks(e, *prices)] == fired


def test_first_price_is_no_crossing_and_a_gap_that_jumps_several_levels_fires_each() -> None:
    rules = [cross(level) for level in ("95", "100", "105", "120")]
    e = evaluator(*rules)
    assert ticks(e, "90") == []
    hits = ticks(e, "110", start=1)
    assert sorted(h.values["level"] for h in hits) == ["100", "105", "95"]
    assert all(h.values["previous"] == "90" and h.values["price"] == "110" for h in hits)


def test_many_rules_on_one_level_all_fire_and_once_rules_disarm() -> None:
    rules = [cross("100") for _ in range(5)]
    e = evaluator(*rules)
    assert len(ticks(e, "99", "100")) == 5
    assert len(ticks(e, "99", "101", start=5)) == 0  # `once`: disarmed after firing
    assert all(r.id not in e.rules for r in rules)


def test_every_respects_the_cooldown_edge() -> None:
    e = evaluator(cross("100", trigger="every", cooldown=10))
    assert len(e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal(99)), T0)) == 0
    assert len(e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal(101)), T0)) == 1
    at = T0 + timedelta(seconds=9.999)
    assert e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal(99)), at) == []
    at = T0 + timedelta(seconds=10)
    assert len(e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal(101)), at)) == 1


def test_expired_and_snoozed_rules_never_fire() -> None:
    expired = cross("100", expires_at=T0 + timedelta(seconds=1))
    snoozed = cross("100", snoozed_until=T0 + timedelta(hours=1))
    live = cross("100", expires_at=T0 + timedelta(seconds=5))
    e = evaluator(expired, snoozed, live)
    hits = ticks(e, "99", "101")  # the crossing happens at T0 + 1 s
    assert [h.rule_id for h in hits] == [live.id]


def test_sources_are_separate() -> None:
    bid_rule = cross("100", source="bid")
    e = evaluator(bid_rule)
    e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal(101), bid=Decimal(99)), T0)
    assert e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal(99), bid=Decimal(99)), T0) == []
    [hit] = e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal(99), bid=Decimal(100)), T0)
    assert hit.values["source"] == "bid" and hit.values["price"] == "100"


def test_gap_flag_marks_the_first_price_after_a_gap() -> None:
    e = evaluator(cross("100", trigger="every"))
    ticks(e, "99")
    e.gaps.add("BTC-USDT")
    [hit] = ticks(e, "101", start=1)
    assert hit.after_gap
    assert not ticks(e, "99", start=2)[0].after_gap


@pytest.mark.parametrize(
    ("on", "prices", "fired"),
    [
        ("enter", ["90", "95"], ["enter"]),
        ("enter", ["90", "100"], ["enter"]),  # the edges belong to the range
        ("exit", ["95", "111"], ["exit"]),
        ("exit", ["95", "100"], []),
        ("any", ["90", "95", "120", "95"], ["enter", "exit", "enter"]),
        ("any", ["80", "120"], []),  # jumped over the range: never inside
    ],
)
def test_price_range(on: str, prices: list[str], fired: list[str]) -> None:
    e = evaluator(rule("price_range", "every", symbol="BTC-USDT", low="92", high="110", on=on))
    assert [h.values["direction"] for h in ticks(e, *prices)] == fired


def test_percent_change_within_the_window() -> None:
    up = rule("percent_change", symbol="BTC-USDT", percent="5", window_seconds=60, direction="up")
    down = rule(
        "percent_change", symbol="BTC-USDT", percent="5", window_seconds=60, direction="down"
    )
    e = evaluator(up, down)
    e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal(100)), T0)
    assert e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal("104.99")), T0) == []
    [hit] = e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal(105)), T0 + timedelta(seconds=30))
    assert hit.rule_id == up.id and hit.values["change"] == "5.00"
    assert hit.values["reference"] == "100"
    # Outside the window the old high no longer counts.
    late = T0 + timedelta(seconds=200)
    assert e.evaluate(Ticker(symbol="BTC-USDT", last=Decimal(100)), late) == []


def test_candle_close_only_on_closed_candles_and_once_per_candle() -> None:
    above = rule(
        "candle_close", "every", symbol="BTC-USDT", interval="1hour", level="100", direction="above"
    )
    below = rule(
        "candle_close", "every", symbol="BTC-USDT", interval="1hour", level="100", direction="below"
    )
    e = evaluator(above, below)

    def candle(close: str, closed: bool, open_time: int) -> Candle:
        p = Decimal(close)
        return Candle("BTC-USDT", "1hour", p, p, p, p, closed, open_time=open_time)

    assert e.evaluate(candle("150", False, 1), T0) == []
    [hit] = e.evaluate(candle("150", True, 1), T0)
    assert hit.rule_id == above.id and hit.dedup_key == "1hour:1"
    assert e.evaluate(candle("150", True, 1), T0) == []  # the same candle again
    assert e.evaluate(candle("100", True, 2), T0) == []  # on the level: neither
    assert [h.rule_id for h in e.evaluate(candle("99", True, 3), T0)] == [below.id]


def test_large_trade_thresholds_and_side() -> None:
    by_qty = rule("large_trade", "every", symbol="BTC-USDT", min_quantity="2")
    by_notional = rule("large_trade", "every", symbol="BTC-USDT", min_notional="1000")
    both = rule("large_trade", "every", symbol="BTC-USDT", min_quantity="2", min_notional="1000")
    sells = rule("large_trade", "every", symbol="BTC-USDT", min_quantity="1", side="SELL")
    e = evaluator(by_qty, by_notional, both, sells)

    def trade(price: str, qty: str, side: Side = Side.BUY) -> set[int]:
        event = Trade("BTC-USDT", Decimal(price), Decimal(qty), side, trade_id="t")
        return {h.rule_id for h in e.evaluate(event, T0)}

    assert trade("100", "2") == {by_qty.id}
    assert trade("600", "2") == {by_qty.id, by_notional.id, both.id}
    assert trade("1000", "1") == {by_notional.id}
    assert trade("1000", "1", Side.SELL) == {by_notional.id, sells.id}
    assert trade("1", "1") == set()


def test_spread_widening_past_the_threshold() -> None:
    wide = rule("spread", "every", symbol="BTC-USDT", percent="1")
    e = evaluator(wide)

    def book(bid: str, ask: str) -> list[Hit]:
        event = OrderBook(
            "BTC-USDT",
            (BookLevel(Decimal(bid), Decimal(1)),),
            (BookLevel(Decimal(ask), Decimal(1)),),
        )
        return e.evaluate(event, T0)

    assert book("100", "100.5") == []  # 0.5 %
    [hit] = book("100", "102")  # 1.98 %
    assert hit.values["percent"] == "1.9802" and hit.values["spread"] == "2"
    assert book("100", "103") == []  # still wide: not a new widening
    assert book("100", "100.1") == []
    assert len(book("100", "102")) == 1


def test_order_statuses_filters_and_duplicates() -> None:
    fills = rule("order", "every", account_id=7)
    sells = rule(
        "order", "every", account_id=7, statuses=["NEW", "FILLED"], side="SELL", symbol="TON-USDT"
    )
    other = rule("order", "every", account_id=8)
    e = evaluator(fills, sells, other)

    def order(
        status: OrderStatus, side: Side = Side.BUY, symbol: str = "TON-USDT", oid: str = "o1"
    ) -> set[int]:
        event = OrderEvent(
            oid,
            symbol,
            status,
            side,
            "LIMIT",
            Decimal(5),
            Decimal(2),
            Decimal(2),
            Decimal("5.01"),
            account="7",
        )
        return {h.rule_id for h in e.evaluate(event, T0)}

    assert order(OrderStatus.NEW) == set()
    assert order(OrderStatus.NEW, Side.SELL, oid="o2") == {sells.id}
    assert order(OrderStatus.FILLED) == {fills.id}
    assert order(OrderStatus.FILLED) == set()  # the same status pushed twice is reported once
    assert order(OrderStatus.FILLED, Side.SELL, oid="o3") == {fills.id, sells.id}
    hit = e.evaluate(
        OrderEvent(
            "o4",
            "TON-USDT",
            OrderStatus.FILLED,
            Side.BUY,
            "LIMIT",
            Decimal(5),
            Decimal(2),
            Decimal(2),
            Decimal("5.01"),
            account="7",
        ),
        T0,
    )[0]
    assert hit.values["average_price"] == "5.01" and hit.dedup_key == "o4:FILLED"


def test_balance_change_and_crossings() -> None:
    change = rule("balance", "every", account_id=3, currency="USDT", amount="10")
    any_change = rule("balance", "every", account_id=3)
    below = rule("balance", "every", account_id=3, currency="USDT", condition="below", amount="100")
    above = rule("balance", "every", account_id=3, currency="USDT", condition="above", amount="100")
    e = evaluator(change, any_change, below, above)

    def update(usdt: str, ton: str = "1") -> set[int]:
        event = BalanceUpdate(
            (Balance("USDT", Decimal(usdt)), Balance("TON", Decimal(ton))), account="3"
        )
        return {h.rule_id for h in e.evaluate(event, T0)}

    assert update("105") == set()  # the first snapshot only teaches the engine the balances
    assert update("100") == {any_change.id}  # changed by 5: below 10; reaching 100 is not below
    assert update("95") == {any_change.id, below.id}
    assert update("120") == {any_change.id, change.id, above.id}
    assert update("120", ton="2") == {any_change.id}
    hit = next(
        h
        for h in e.evaluate(BalanceUpdate((Balance("USDT", Decimal(50)),), account="3"), T0)
        if h.rule_id == below.id
    )
    assert (hit.values["before"], hit.values["after"], hit.values["change"]) == ("120", "50", "-70")


def test_removed_and_replaced_rules() -> None:
    r = cross("100", trigger="every")
    e = evaluator(r)
    e.remove(r.id)
    assert ticks(e, "99", "101") == []
    moved = cross("200", trigger="every")
    moved.id = r.id
    e.add(moved)
    e.add(moved)  # re-adding replaces, never duplicates
    assert len(ticks(e, "199", "201", start=5)) == 1


# --- one rule's failure is its own ---------------------------------------------------


def test_a_rule_whose_arithmetic_fails_is_skipped_and_the_others_hits_stand() -> None:
    """A price no bound let through reaches a percent_change rule, whose arithmetic fails
    (the context's exponent limit): it is skipped and listed; the price_cross rule on the
    same push fires; and the price moves on, so the next push compares with it."""
    cross = rule("price_cross", trigger="every", symbol="BTC-USDT", level="100")
    move = rule(
        "percent_change", trigger="every", symbol="BTC-USDT", percent="5", window_seconds=60
    )
    e = evaluator(cross, move)
    ticks(e, "99")
    huge = Ticker(symbol="BTC-USDT", last=Decimal("1e999999"))
    hits = e.evaluate(huge, T0 + timedelta(seconds=1))
    assert [h.rule_id for h in hits] == [cross.id]
    assert e.skipped == [(move.id, "InvalidOperation")]
    assert e.prices[("BTC-USDT", "last")] == Decimal("1e999999")
    e.skipped.clear()
    # Back down across 100: the crossing is found against the price before.
    assert cross.id in [h.rule_id for h in ticks(e, "99", start=2)]


def test_an_event_that_fails_as_a_whole_leaves_the_prices_where_they_were() -> None:
    """If evaluating a push fails outside any one rule, nothing moves: the next push finds
    the crossing the failed one would have."""
    cross = rule("price_cross", symbol="BTC-USDT", level="100")
    e = evaluator(cross)
    ticks(e, "99")

    class Broken(Decimal):
        def __ne__(self, other: object) -> bool:
            raise ArithmeticError("broken")

    assert e.evaluate(Ticker(symbol="BTC-USDT", last=Broken("101")), T0) == []
    assert e.failed_events == 1 and e.skipped and e.prices[("BTC-USDT", "last")] == Decimal(99)
    assert [h.rule_id for h in ticks(e, "101", start=1)] == [cross.id]
