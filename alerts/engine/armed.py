"""Rules as the engine holds them: one small slotted object per rule, built straight from
the stored row (already validated when it was written), so a million fit in memory."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from alerts.domain.hits import Hit
from alerts.domain.rules import RuleKind

_KINDS = {k.value: k for k in RuleKind}


def _text(value: Any) -> Any:
    # Interned: a million rules share a few hundred symbol and mode strings.
    return sys.intern(value) if isinstance(value, str) else value


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


class Armed:
    """One enabled rule. Field meaning by kind:

    - price_cross: `a` level, `mode` direction (up/down/any), `source`
    - price_range: `a` low, `b` high, `mode` on (enter/exit/any), `source`
    - percent_change: `a` percent, `window` seconds, `mode` direction, `source`
    - candle_close: `a` level, `mode` above/below, `extra` interval
    - large_trade: `a` min_quantity, `b` min_notional, `mode` side or None
    - spread: `a` percent
    - order: `account`, `extra` statuses (frozenset), `symbol` or None, `mode` side or None
    - balance: `account`, `extra` currency or None, `mode` condition, `a` amount or None
    """

    __slots__ = (
        "a",
        "account",
        "b",
        "cooldown",
        "every",
        "expires",
        "extra",
        "id",
        "kind",
        "last_fired",
        "mode",
        "rearm",
        "snoozed",
        "source",
        "symbol",
        "user_id",
        "waiting",
        "window",
    )

    def __init__(self, rule_id: int, user_id: int, kind: RuleKind) -> None:
        self.id = rule_id
        self.user_id = user_id
        self.kind = kind
        self.symbol: str | None = None
        self.account: int | None = None
        self.source = "last"
        self.mode: str | None = None
        self.a: Decimal | None = None
        self.b: Decimal | None = None
        self.window = 0
        self.extra: Any = None
        self.every = False
        self.cooldown = 0
        self.expires: float | None = None
        self.snoozed: float | None = None
        self.last_fired: float | None = None
        # price_cross/price_range with rearm_percent: the fraction, and what a rule that fired
        # waits for before it may fire again (see `alerts.engine.rearm`).
        self.rearm: Decimal | None = None
        self.waiting: tuple[Decimal, bool] | None = None

    def open_at(self, now: float) -> bool:
        """Not expired and not snoozed."""
        if self.expires is not None and now >= self.expires:
            return False
        return self.snoozed is None or now >= self.snoozed

    def may_fire(self, now: float) -> bool:
        """Not expired, not snoozed, and out of its cooldown."""
        if not self.open_at(now):
            return False
        return not (
            self.every and self.last_fired is not None and now < self.last_fired + self.cooldown
        )

    def fire(
        self,
        now: datetime,
        values: dict[str, str],
        *,
        after_gap: bool = False,
        dedup: str | None = None,
        state: dict[str, object] | None = None,
    ) -> Hit:
        """This rule's hit at `now`, with `values` (an `every` rule's cooldown starts)."""
        if self.every:
            self.last_fired = now.timestamp()
        values["time"] = now.isoformat()
        return Hit(
            rule_id=self.id,
            user_id=self.user_id,
            kind=self.kind.value,
            symbol=self.symbol,
            values=values,
            fired_at=now,
            once=not self.every,
            after_gap=after_gap,
            dedup_key=dedup,
            price_source=self.source,
            rule_state=state,
        )

    def __repr__(self) -> str:
        return f"Armed({self.id}, {self.kind.value}, {self.symbol})"


def arm(row: Mapping[str, Any]) -> Armed:
    """An `Armed` rule from a `rules` row; ValueError if the row cannot be understood."""
    return arm_fields(
        row["id"],
        row["user_id"],
        row["kind"],
        row["params"],
        row["trigger"],
        row["cooldown_seconds"],
        row.get("expires_at"),
        row.get("snoozed_until"),
        row.get("last_fired_at"),
        row.get("state"),
    )


def arm_fields(
    rule_id: int,
    user_id: int,
    kind_name: str,
    p: Mapping[str, Any],
    trigger: str,
    cooldown: int | None,
    expires_at: datetime | None,
    snoozed_until: datetime | None,
    last_fired_at: datetime | None,
    state: Any = None,
) -> Armed:
    """`arm` from the columns themselves (the start-up load's fast path)."""
    kind = _KINDS.get(kind_name)
    if kind is None:
        raise ValueError(f"unknown rule kind {kind_name!r}")
    p = p or {}
    rule = Armed(int(rule_id), int(user_id), kind)
    rule.symbol = _text(p.get("symbol"))
    rule.every = trigger == "every"
    rule.cooldown = int(cooldown or 0)
    rule.expires = _epoch(expires_at)
    rule.snoozed = _epoch(snoozed_until)
    rule.last_fired = _epoch(last_fired_at)
    source = p.get("source")
    if source:
        rule.source = _text(str(source))
    if kind is RuleKind.PRICE_CROSS:
        rule.a, rule.mode = _dec(p["level"]), _text(p.get("direction", "any"))
        _rearm(rule, p, state)
    elif kind is RuleKind.PRICE_RANGE:
        rule.a, rule.b, rule.mode = _dec(p["low"]), _dec(p["high"]), _text(p.get("on", "any"))
        _rearm(rule, p, state)
    elif kind is RuleKind.PERCENT_CHANGE:
        rule.a, rule.mode = _dec(p["percent"]), _text(p.get("direction", "any"))
        rule.window = int(p["window_seconds"])
    elif kind is RuleKind.CANDLE_CLOSE:
        rule.a, rule.mode, rule.extra = _dec(p["level"]), p["direction"], p["interval"]
    elif kind is RuleKind.LARGE_TRADE:
        rule.a, rule.b, rule.mode = (
            _dec(p.get("min_quantity")),
            _dec(p.get("min_notional")),
            p.get("side"),
        )
        if rule.a is None and rule.b is None:
            raise ValueError("large_trade without a size")
    elif kind is RuleKind.SPREAD:
        rule.a = _dec(p["percent"])
    elif kind is RuleKind.ORDER:
        rule.account = int(p["account_id"])
        rule.extra = frozenset(p.get("statuses") or ["FILLED"])
        rule.mode = p.get("side")
    elif kind is RuleKind.BALANCE:
        rule.account = int(p["account_id"])
        rule.extra = p.get("currency")
        rule.mode = p.get("condition", "change")
        rule.a = _dec(p.get("amount"))
    return rule


def _rearm(rule: Armed, p: Mapping[str, Any], state: Any) -> None:
    percent = _dec(p.get("rearm_percent"))
    if percent is not None and rule.every:
        rule.rearm = percent / 100
        if isinstance(state, dict) and "rearm_at" in state:
            rule.waiting = (Decimal(str(state["rearm_at"])), bool(state.get("falling")))
