"""One Create and one Public model per rule kind: the kind's own fields (from
`alerts.domain.rules`) joined to the common settings or state, each Create with its example,
so OpenAPI documents every kind with its own fields."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from alerts.domain.rules import (
    BalanceRule,
    CandleClose,
    LargeTrade,
    OrderRule,
    PercentChange,
    PriceCross,
    PriceRange,
    RuleKind,
    Spread,
)
from alerts.services.rule_settings import MAX_COOLDOWN_SECONDS, RuleSettings, RuleState, Trigger


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(extra="forbid", json_schema_extra={"examples": list(examples)})


EXAMPLES: dict[RuleKind, dict[str, Any]] = {
    RuleKind.PRICE_CROSS: {
        "kind": "price_cross",
        "symbol": "BTC-USDT",
        "level": "70000",
        "direction": "up",
        "source": "last",
    },
    RuleKind.PRICE_RANGE: {
        "kind": "price_range",
        "symbol": "TON-USDT",
        "low": "5.2",
        "high": "6.8",
        "on": "exit",
        "trigger": "every",
        "cooldown_seconds": 600,
    },
    RuleKind.PERCENT_CHANGE: {
        "kind": "percent_change",
        "symbol": "ETH-USDT",
        "percent": "5",
        "window_seconds": 3600,
        "direction": "any",
    },
    RuleKind.CANDLE_CLOSE: {
        "kind": "candle_close",
        "symbol": "BTC-USDT",
        "interval": "1hour",
        "level": "68000",
        "direction": "below",
    },
    RuleKind.LARGE_TRADE: {
        "kind": "large_trade",
        "symbol": "BTC-USDT",
        "min_notional": "250000",
        "trigger": "every",
        "cooldown_seconds": 60,
    },
    RuleKind.SPREAD: {"kind": "spread", "symbol": "TON-USDT", "percent": "0.5"},
    RuleKind.ORDER: {
        "kind": "order",
        "account_id": 1,
        "statuses": ["FILLED", "CANCELED"],
        "message": "{symbol} order {order_id} {status} at {average_price}",
    },
    RuleKind.BALANCE: {
        "kind": "balance",
        "account_id": 1,
        "currency": "USDT",
        "condition": "below",
        "amount": "100",
    },
}


class PriceCrossCreate(RuleSettings, PriceCross):
    model_config = _examples(EXAMPLES[RuleKind.PRICE_CROSS])


class PriceRangeCreate(RuleSettings, PriceRange):
    model_config = _examples(EXAMPLES[RuleKind.PRICE_RANGE])


class PercentChangeCreate(RuleSettings, PercentChange):
    model_config = _examples(EXAMPLES[RuleKind.PERCENT_CHANGE])


class CandleCloseCreate(RuleSettings, CandleClose):
    model_config = _examples(EXAMPLES[RuleKind.CANDLE_CLOSE])


class LargeTradeCreate(RuleSettings, LargeTrade):
    model_config = _examples(EXAMPLES[RuleKind.LARGE_TRADE])


class SpreadCreate(RuleSettings, Spread):
    model_config = _examples(EXAMPLES[RuleKind.SPREAD])


# Account kinds report every event by default; a cooldown, where one is set, counts per order
# (per currency for balances), so it never swallows another order.
_EVERY_EVENT = "Default `every`: every order (balance change) is reported."
_PER_ORDER = (
    "Default 0. A cooldown counts per order (per currency for balances): it never holds back "
    "another order."
)


class OrderCreate(RuleSettings, OrderRule):
    model_config = _examples(EXAMPLES[RuleKind.ORDER])

    trigger: Trigger = Field(default=Trigger.EVERY, description=_EVERY_EVENT)
    cooldown_seconds: int = Field(default=0, ge=0, le=MAX_COOLDOWN_SECONDS, description=_PER_ORDER)


class BalanceCreate(RuleSettings, BalanceRule):
    model_config = _examples(EXAMPLES[RuleKind.BALANCE])

    trigger: Trigger = Field(default=Trigger.EVERY, description=_EVERY_EVENT)
    cooldown_seconds: int = Field(default=0, ge=0, le=MAX_COOLDOWN_SECONDS, description=_PER_ORDER)


class PriceCrossPublic(RuleState, PriceCross):
    pass


class PriceRangePublic(RuleState, PriceRange):
    pass


class PercentChangePublic(RuleState, PercentChange):
    pass


class CandleClosePublic(RuleState, CandleClose):
    pass


class LargeTradePublic(RuleState, LargeTrade):
    pass


class SpreadPublic(RuleState, Spread):
    pass


class OrderPublic(RuleState, OrderRule):
    pass


class BalancePublic(RuleState, BalanceRule):
    pass
