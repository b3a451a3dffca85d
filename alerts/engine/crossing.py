"""Price crossings: whether a price_cross or price_range rule fires as a price moves from one
value to the next, and with what values. Pure: the `MarketRules` index finds the rules a move
may concern; this decides."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from alerts.domain.hits import Hit
from alerts.domain.rules import RuleKind
from alerts.domain.values import format_decimal as fmt
from alerts.engine.armed import Armed
from alerts.engine.rearm import stored, wait_after


def _inside(rule: Armed, price: Decimal) -> bool:
    assert rule.a is not None
    assert rule.b is not None
    return rule.a <= price <= rule.b


def crossing(
    rule: Armed, previous: Decimal, price: Decimal, now: datetime, gap: bool
) -> Hit | None:
    """A price_cross or price_range rule's hit as the price went from `previous` to `price`
    (none while it waits to re-arm; a hit starts that wait, see `alerts.engine.rearm`)."""
    if rule.waiting is not None:
        return None
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
        edge = level
    else:
        was, now_in = _inside(rule, previous), _inside(rule, price)
        if was == now_in:
            return None
        side = "enter" if now_in else "exit"
        if rule.mode != "any" and rule.mode != side:
            return None
        assert rule.b is not None
        values.update(low=fmt(rule.a), high=fmt(rule.b), direction=side)
        # The edge crossed: low going up into the range or down out of it; else high.
        edge = rule.a if now_in == (price > previous) else rule.b
    wait = wait_after(rule, edge, up=price > previous)
    if wait is None:
        return rule.fire(now, values, after_gap=gap)
    rule.waiting = wait
    return rule.fire(now, values, after_gap=gap, state=stored(wait))
