"""Every rule kind's placeholders are the values its evaluator produces: a template may name
each one and finds it filled (the values the recorder adds, `rule` and `kind`, aside), and
the evaluator produces nothing a template could not name."""

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
    FeedEvent,
    Order,
    OrderBook,
    OrderStatus,
    Side,
    Ticker,
    Trade,
)
from alerts.domain.rules import RuleKind
from alerts.domain.templates import placeholders_for
from alerts.engine.armed import arm
from alerts.engine.evaluate import Evaluator

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
BTC = "BTC-USDT"
RECORDED = {"rule", "kind"}  # added by the recorder, not the evaluator
D = Decimal


def _book(bid: str, ask: str) -> OrderBook:
    return OrderBook(BTC, (BookLevel(D(bid), D("1")),), (BookLevel(D(ask), D("1")),))


def _order(status: OrderStatus) -> Order:
    return Order(
        "o-1", BTC, status, side=Side.BUY, type="LIMIT", price=D("100"), quantity=D("2"),
        executed_quantity=D("2"), average_price=D("99.5"), account="101",
    )  # fmt: skip


CASES: dict[RuleKind, tuple[dict[str, Any], list[FeedEvent]]] = {
    RuleKind.PRICE_CROSS: ({"level": "100"}, [Ticker(BTC, D("99")), Ticker(BTC, D("101"))]),
    RuleKind.PRICE_RANGE: (
        {"low": "100", "high": "110"},
        [Ticker(BTC, D("99")), Ticker(BTC, D("101"))],
    ),
    RuleKind.PERCENT_CHANGE: (
        {"percent": "1", "window_seconds": 60},
        [Ticker(BTC, D("100")), Ticker(BTC, D("102"))],
    ),
    RuleKind.CANDLE_CLOSE: (
        {"interval": "1min", "level": "100", "direction": "above"},
        [Candle(BTC, "1min", D("99"), D("102"), D("98"), D("101"), closed=True)],
    ),
    RuleKind.LARGE_TRADE: (
        {"min_quantity": "5"},
        [Trade(BTC, D("100"), D("10"), side=Side.SELL, trade_id="t-1")],
    ),
    RuleKind.SPREAD: ({"percent": "1"}, [_book("100", "100.1"), _book("100", "105")]),
    RuleKind.ORDER: ({"account_id": 101}, [_order(OrderStatus.FILLED)]),
    RuleKind.BALANCE: (
        {"account_id": 101, "currency": "USDT"},
        [
            BalanceUpdate((Balance("USDT", D("10")),), full=True, account="101"),
            BalanceUpdate((Balance("USDT", D("15")),), account="101"),
        ],
    ),
}


@pytest.mark.parametrize("kind", list(RuleKind), ids=lambda k: k.value)
def test_the_evaluator_fills_every_placeholder_of_its_kind_and_no_other(kind: RuleKind) -> None:
    params, events = CASES[kind]
    if kind not in (RuleKind.ORDER, RuleKind.BALANCE):
        params = {"symbol": BTC, **params}
    row = {
        "id": 1, "user_id": 1, "kind": kind.value, "params": params, "trigger": "every",
        "cooldown_seconds": 0,
    }  # fmt: skip
    evaluator = Evaluator()
    evaluator.add(arm(row))
    hits = []
    for step, event in enumerate(events):
        hits += evaluator.evaluate(event, T0 + timedelta(seconds=step))
    assert len(hits) == 1, f"{kind.value}: the events should fire the rule once"
    produced = set(hits[0].values)
    named = set(placeholders_for(kind)) - RECORDED
    assert named - produced == set(), f"{kind.value}: named but never filled"
    assert produced - named == set(), f"{kind.value}: produced but not nameable"
