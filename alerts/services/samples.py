"""Sample values for a rule's test message: every placeholder its kind has, filled from the
rule's own fields and the symbol's latest price where there is one, so that a test shows
what a real alert will look like, never a blank ("now 70000 (was )")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from alerts.domain.rules import RuleKind
from alerts.domain.templates import placeholders_for
from alerts.domain.values import format_decimal


def _num(value: Any, default: str) -> str:
    return default if value in (None, "") else str(value)


def sample_values(kind: RuleKind, params: dict[str, Any], price: str | None) -> dict[str, str]:
    """A value for each of `kind`'s placeholders (except the common ones)."""
    p = params
    symbol = _num(p.get("symbol"), "BTC-USDT")
    level = _num(p.get("level") or p.get("low"), price or "1")
    now = price or level
    direction = "down" if p.get("direction") == "down" else "up"
    values: dict[str, str] = {
        "symbol": symbol,
        "price": now,
        "source": _num(p.get("source"), "last"),
    }
    if kind is RuleKind.PRICE_CROSS:
        values.update(level=level, direction=direction, previous=level)
    elif kind is RuleKind.PRICE_RANGE:
        edge = "exit" if p.get("on") == "exit" else "enter"
        values.update(low=_num(p.get("low"), now), high=_num(p.get("high"), now))
        values.update(direction=edge, previous=now)
    elif kind is RuleKind.PERCENT_CHANGE:
        percent = _num(p.get("percent"), "1")
        values.update(percent=percent, change=("-" if direction == "down" else "") + percent)
        values.update(window=_num(p.get("window_seconds"), "60"), direction=direction)
        values.update(reference=now)
    elif kind is RuleKind.CANDLE_CLOSE:
        values.update(interval=_num(p.get("interval"), "1hour"), level=level, open=level)
        values.update(close=now, direction=_num(p.get("direction"), "above"))
    elif kind is RuleKind.LARGE_TRADE:
        quantity = _num(p.get("min_quantity"), "1")
        notional = p.get("min_notional") or format_decimal(Decimal(now) * Decimal(quantity))
        values.update(quantity=quantity, notional=str(notional), side=_num(p.get("side"), "BUY"))
    elif kind is RuleKind.SPREAD:
        values.update(bid=now, ask=now, spread="0", percent=_num(p.get("percent"), "1"))
    elif kind is RuleKind.ORDER:
        statuses = p.get("statuses") or ["FILLED"]
        values.update(order_id="123456", status=str(statuses[0]), side=_num(p.get("side"), "BUY"))
        values.update(type="LIMIT", quantity="1", executed="1", filled="1", average_price=now)
        values.update(account=_num(p.get("account_id"), "1"))
    elif kind is RuleKind.BALANCE:
        amount = _num(p.get("amount"), "10")
        values.update(currency=_num(p.get("currency"), "USDT"), amount=amount)
        values.update(
            before="100", after="90", change="-10", account=_num(p.get("account_id"), "1")
        )
    wanted = set(placeholders_for(kind))
    return {k: v for k, v in values.items() if k in wanted}
