"""Request and response models for users, keys, accounts, events and tickers (destinations
are in `alerts.services.destination_schemas`).

Create and Update models take what a caller may send (unknown fields are refused); Public
models are what the service shows, never a secret. Rules have their own module.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    model_validator,
)

from alerts.domain.quiet_hours import MAX_TIMEZONE_LENGTH, format_clock, parse_clock, timezone_name
from alerts.domain.values import Name, format_decimal

MAX_CHAT_ID = 10**15


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- users and API keys -----------------------------------------------------------------


def _clock(value: str) -> str:
    return format_clock(parse_clock(value))


ClockTime = Annotated[
    str,
    AfterValidator(_clock),
    Field(
        description="A time of day, HH:MM (24-hour clock).",
        examples=["23:00"],
        json_schema_extra={"pattern": r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$", "maxLength": 5},
    ),
]
TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TIMEZONE_LENGTH),
    AfterValidator(timezone_name),
    Field(description="An IANA time zone name.", examples=["Europe/Berlin"]),
]


class QuietHoursWindow(_Input):
    """A daily window, in the user's time zone; an end at or before the start is on the next
    day ("23:00" to "07:30")."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"start": "23:00", "end": "07:30"}]}
    )

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHoursWindow:
        if self.start == self.end:
            raise ValueError("start and end are the same time: send null to turn quiet hours off")
        return self


def _unchanged_when_omitted(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # an update leaves out what it does not change


class UserSettingsUpdate(_Input):
    timezone: TimeZone = Field(
        default="UTC",
        description="An IANA name; quiet hours are kept in this zone. Omitted: unchanged.",
        json_schema_extra=_unchanged_when_omitted,
    )
    quiet_hours: QuietHoursWindow | None = Field(
        default=None,
        description="Alerts of non-urgent rules in this window are held, and go out as one "
        "summary per destination when it ends; null turns quiet hours off. Omitted: unchanged.",
        json_schema_extra=_unchanged_when_omitted,
    )


class UserCreate(_Input):
    name: Name
    telegram_user_id: int | None = Field(default=None, gt=0, lt=MAX_CHAT_ID)


class UserUpdate(UserSettingsUpdate):
    name: Name | None = None
    telegram_user_id: int | None = Field(default=None, gt=0, lt=MAX_CHAT_ID)


class UserPublic(BaseModel):
    id: int
    name: str
    telegram_user_id: int | None
    timezone: str
    quiet_hours: QuietHoursWindow | None
    created_at: datetime


class UserCreated(UserPublic):
    api_key: str = Field(description="Shown once: store it now, it cannot be read again.")


class ApiKeyCreate(_Input):
    name: Name = "default"


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    hint: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: datetime


class ApiKeyCreated(ApiKeyPublic):
    api_key: str = Field(description="Shown once: store it now, it cannot be read again.")


# --- accounts ---------------------------------------------------------------------------

Token = Annotated[
    SecretStr,
    Field(min_length=1, max_length=4096, description="The xRocket API token. Never returned."),
]


class AccountCreate(_Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "main", "token": "<xRocket API token>"}]},
    )

    name: Name
    token: Token
    notify_orders: bool = Field(
        default=True, description="Tell the owner when an order fills, is cancelled, ..."
    )
    notify_balances: bool = Field(default=True, description="Tell the owner of balance changes.")


class AccountUpdate(_Input):
    name: Name | None = None
    token: Token | None = Field(default=None, description="A new token; verified like a new one.")
    notify_orders: bool | None = None
    notify_balances: bool | None = None


class AccountPublic(BaseModel):
    id: int
    name: str
    status: Literal["active", "rejected"] = Field(
        description="`rejected`: the exchange refused the token; replace it to resume."
    )
    status_reason: str | None
    notify_orders: bool
    notify_balances: bool
    orders_rule_id: int | None = Field(description="The rule that sends order notifications.")
    balances_rule_id: int | None = Field(description="The rule that sends balance changes.")
    verified_at: datetime | None
    created_at: datetime
    updated_at: datetime


class AccountList(BaseModel):
    items: list[AccountPublic]


# --- events, deliveries, tickers --------------------------------------------------------


class DeliveryPublic(BaseModel):
    id: int
    destination_id: int | None
    status: Literal["pending", "sending", "sent", "failed", "dead"]
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    sent_at: datetime | None
    fallback: bool = Field(
        default=False,
        description="To a fallback destination of the rule: every other delivery ended dead.",
    )


class EventPublic(BaseModel):
    id: int
    rule_id: int | None = Field(description="Null once the rule is deleted.")
    rule_name: str
    kind: str
    symbol: str | None
    values: dict[str, Any] = Field(description="Every value the message was built from.")
    after_gap: bool = Field(description="True when detected on the first price after a gap.")
    test: bool
    fired_at: datetime
    deliveries: list[DeliveryPublic]


class EventPage(BaseModel):
    """One page of events, newest first; pass `next_cursor` as `cursor` for older ones."""

    items: list[EventPublic]
    next_cursor: str | None


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


class TickerPublic(BaseModel):
    symbol: str
    last: str | None
    bid: str | None
    ask: str | None
    change_percent: str | None
    exchange_time: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> TickerPublic:
        """From a `Ticker` row, decimals as plain strings."""
        return cls(
            symbol=row.symbol,
            last=_text(row.last),
            bid=_text(row.bid),
            ask=_text(row.ask),
            change_percent=_text(row.change_percent),
            exchange_time=row.exchange_time,
            updated_at=row.updated_at,
        )


class TickerList(BaseModel):
    items: list[TickerPublic]
