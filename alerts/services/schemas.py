"""Request and response models for users, keys, destinations, accounts, events and tickers.

Create and Update models take what a caller may send (unknown fields are refused); Public
models are what the service shows, never a secret. Rules have their own module.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alerts.domain.values import Name, format_decimal

MAX_CHAT_ID = 10**15
ChatId = Annotated[
    int,
    Field(
        ge=-MAX_CHAT_ID,
        le=MAX_CHAT_ID,
        description="A Telegram chat id: positive for a person, negative for a group or channel.",
        examples=[123456789],
    ),
]
AppriseUrl = Annotated[
    SecretStr,
    Field(
        min_length=1,
        max_length=2048,
        description="Any URL Apprise understands, e.g. discord://id/token. Masked on read.",
        examples=["discord://webhook_id/webhook_token"],
    ),
]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- users and API keys -----------------------------------------------------------------


class UserCreate(_Input):
    name: Name
    telegram_user_id: int | None = Field(default=None, gt=0, lt=MAX_CHAT_ID)


class UserUpdate(_Input):
    name: Name | None = None
    telegram_user_id: int | None = Field(default=None, gt=0, lt=MAX_CHAT_ID)


class UserPublic(BaseModel):
    id: int
    name: str
    telegram_user_id: int | None
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


# --- destinations -----------------------------------------------------------------------


class TelegramDestinationCreate(_Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "telegram"}, {"kind": "telegram", "chat_id": -1001234}]
        },
    )

    kind: Literal["telegram"]
    chat_id: ChatId | None = Field(
        default=None,
        description="Omitted: your own private chat with the bot. Otherwise a chat you proved "
        "yours: one where you sent /start, or linked with /link CODE "
        "(POST /v1/destinations/telegram-links).",
    )
    name: Name | None = None


class AppriseDestinationCreate(_Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "apprise", "url": "ntfy://ntfy.sh/my-alerts", "name": "ntfy"}]
        },
    )

    kind: Literal["apprise"]
    url: AppriseUrl
    name: Name | None = None


DestinationCreate = Annotated[
    TelegramDestinationCreate | AppriseDestinationCreate, Field(discriminator="kind")
]


class DestinationUpdate(_Input):
    name: Name | None = None
    enabled: bool | None = Field(
        default=None, description="Re-enabling also clears the reason it was disabled."
    )
    chat_id: ChatId | None = None
    url: AppriseUrl | None = None


class DestinationPublic(BaseModel):
    id: int
    kind: Literal["telegram", "apprise"]
    name: str
    chat_id: int | None
    url: str | None = Field(description="The Apprise URL with its secrets masked.")
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class DestinationList(BaseModel):
    items: list[DestinationPublic]


class TelegramLinkCreated(BaseModel):
    """Send `/link CODE` in the chat to link (in a group or channel, as an administrator)."""

    code: str = Field(description="Single use; valid until `expires_at` (10 minutes).")
    expires_at: datetime


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
