"""Request and response models for rules: one Create and one Public class per kind, joined into
unions on `kind`, so OpenAPI documents every kind with its own fields and example."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from alerts.domain.events import OrderStatus, Side
from alerts.domain.rules import (
    MAX_WINDOW_SECONDS,
    MIN_WINDOW_SECONDS,
    BalanceRule,
    CandleClose,
    CandleInterval,
    LargeTrade,
    OrderRule,
    PercentChange,
    PriceCross,
    PriceRange,
    RuleKind,
    Spread,
)
from alerts.domain.templates import TemplateError, check_template
from alerts.domain.values import Amount, Currency, Message, Name, Percent, Price, Symbol

MAX_DESTINATIONS = 20
DestinationId = Annotated[int, Field(ge=1, le=2**31 - 1)]
MAX_COOLDOWN_SECONDS = 30 * 24 * 3600
DEFAULT_COOLDOWN_SECONDS = 300


class Trigger(StrEnum):
    """`once`: the rule disables itself after firing; `every`: it fires again after a cooldown."""

    ONCE = "once"
    EVERY = "every"


LATEST_EXPIRY = datetime(2100, 1, 1, tzinfo=UTC)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
        raise ValueError("must be a time before 2100-01-01T00:00:00Z") from None
    if aware >= LATEST_EXPIRY:
        raise ValueError("must be a time before 2100-01-01T00:00:00Z")
    return aware


class RuleSettings(BaseModel):
    """What every rule has besides its kind's fields."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, description="Default: made from the fields.")
    destination_ids: list[DestinationId] = Field(
        default_factory=list,
        max_length=MAX_DESTINATIONS,
        description="Where to deliver; empty means the owner's own Telegram chat.",
    )
    trigger: Trigger = Trigger.ONCE
    cooldown_seconds: int = Field(
        default=DEFAULT_COOLDOWN_SECONDS,
        ge=0,
        le=MAX_COOLDOWN_SECONDS,
        description="With trigger `every`: the least time between two firings (0: none).",
    )
    expires_at: datetime | None = Field(
        default=None, description="After this time the rule never fires (UTC if no offset)."
    )
    message: Message | None = Field(
        default=None,
        description="Template with placeholders such as {symbol}, {price}, {level}, {rule}.",
    )
    enabled: bool = True

    @field_validator("destination_ids")
    @classmethod
    def _distinct_destinations(cls, value: list[int]) -> list[int]:
        return list(dict.fromkeys(value))

    @field_validator("expires_at")
    @classmethod
    def _aware_expiry(cls, value: datetime | None) -> datetime | None:
        return _utc(value)

    @model_validator(mode="after")
    def _checked_template(self) -> RuleSettings:
        if self.message is not None:
            try:
                check_template(self.message, RuleKind(getattr(self, "kind")))  # noqa: B009
            except TemplateError as exc:
                raise ValueError(f"message: {exc}") from None
        return self


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


RuleCreate = Annotated[
    PriceCrossCreate
    | PriceRangeCreate
    | PercentChangeCreate
    | CandleCloseCreate
    | LargeTradeCreate
    | SpreadCreate
    | OrderCreate
    | BalanceCreate,
    Field(discriminator="kind"),
]
rule_create_adapter: TypeAdapter[RuleCreate] = TypeAdapter(RuleCreate)


class RuleUpdate(BaseModel):
    """A partial update: only the fields given change. A rule's kind cannot change."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"level": "72000"}, {"enabled": False}]},
    )

    kind: RuleKind | None = None
    name: Name | None = None
    destination_ids: list[DestinationId] | None = Field(default=None, max_length=MAX_DESTINATIONS)
    trigger: Trigger | None = None
    cooldown_seconds: int | None = Field(default=None, ge=0, le=MAX_COOLDOWN_SECONDS)
    expires_at: datetime | None = None
    message: Message | None = None
    enabled: bool | None = None
    symbol: Symbol | None = None
    level: Price | None = None
    direction: Literal["up", "down", "any", "above", "below"] | None = None
    source: Literal["last", "bid", "ask"] | None = None
    low: Price | None = None
    high: Price | None = None
    on: Literal["enter", "exit", "any"] | None = None
    percent: Percent | None = None
    window_seconds: int | None = Field(default=None, ge=MIN_WINDOW_SECONDS, le=MAX_WINDOW_SECONDS)
    interval: CandleInterval | None = None
    min_quantity: Price | None = None
    min_notional: Price | None = None
    side: Side | None = None
    account_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    statuses: list[OrderStatus] | None = None
    currency: Currency | None = None
    condition: Literal["change", "below", "above"] | None = None
    amount: Amount | None = None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return _utc(value)


class RuleState(BaseModel):
    """What the service adds to a rule: identity, history, and its own switches."""

    id: int
    status: str | None = Field(
        default=None,
        description='Why the rule cannot fire now, e.g. "symbol not found on the exchange"; '
        "null when nothing stands in its way.",
    )
    name: str
    destination_ids: list[int]
    trigger: Trigger
    cooldown_seconds: int
    expires_at: datetime | None
    message: str | None
    enabled: bool
    snoozed_until: datetime | None
    fire_count: int
    last_fired_at: datetime | None
    created_at: datetime
    updated_at: datetime


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


RulePublic = Annotated[
    PriceCrossPublic
    | PriceRangePublic
    | PercentChangePublic
    | CandleClosePublic
    | LargeTradePublic
    | SpreadPublic
    | OrderPublic
    | BalancePublic,
    Field(discriminator="kind"),
]
rule_public_adapter: TypeAdapter[RulePublic] = TypeAdapter(RulePublic)


class RulePage(BaseModel):
    """One page of rules; pass `next_cursor` as `cursor` for the next page (null: no more)."""

    items: list[RulePublic]
    next_cursor: str | None
