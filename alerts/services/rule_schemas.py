"""Request and response models for rules: the per-kind Create and Public classes
(`alerts.services.rule_kinds`) joined into unions on `kind`, the partial update and the page,
so OpenAPI documents every kind with its own fields and example."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from alerts.domain.events import OrderStatus, Side
from alerts.domain.rules import MAX_WINDOW_SECONDS, MIN_WINDOW_SECONDS, CandleInterval, RuleKind
from alerts.domain.values import Amount, Currency, Message, Name, Percent, Price, Symbol
from alerts.services.rule_kinds import (
    EXAMPLES,
    BalanceCreate,
    BalancePublic,
    CandleCloseCreate,
    CandleClosePublic,
    LargeTradeCreate,
    LargeTradePublic,
    OrderCreate,
    OrderPublic,
    PercentChangeCreate,
    PercentChangePublic,
    PriceCrossCreate,
    PriceCrossPublic,
    PriceRangeCreate,
    PriceRangePublic,
    SpreadCreate,
    SpreadPublic,
)
from alerts.services.rule_settings import (
    MAX_COOLDOWN_SECONDS,
    MAX_DESTINATIONS,
    MAX_FALLBACKS,
    DestinationId,
    RuleSettings,
    Trigger,
    utc_expiry,
)

__all__ = [
    "EXAMPLES",
    "BalanceCreate",
    "OrderCreate",
    "RuleCreate",
    "RulePage",
    "RulePublic",
    "RuleSettings",
    "RuleUpdate",
    "Trigger",
    "rule_create_adapter",
    "rule_public_adapter",
]

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
    fallback_destination_ids: list[DestinationId] | None = Field(
        default=None, max_length=MAX_FALLBACKS
    )
    urgent: bool | None = None
    trigger: Trigger | None = None
    cooldown_seconds: int | None = Field(default=None, ge=0, le=MAX_COOLDOWN_SECONDS)
    expires_at: datetime | None = None
    message: Message | None = None
    enabled: bool | None = None
    symbol: Symbol | None = None
    level: Price | None = None
    direction: Literal["up", "down", "any", "above", "below"] | None = None
    source: Literal["last", "bid", "ask"] | None = None
    rearm_percent: Percent | None = None
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
        return utc_expiry(value)


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
