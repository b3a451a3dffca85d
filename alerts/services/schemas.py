"""Request and response models for users, keys, destinations, accounts, events and tickers.

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

WebhookUrl = Annotated[
    SecretStr,
    Field(
        min_length=1,
        max_length=2048,
        description="Where each alert is POSTed, https:// (or http://); no credentials in it "
        "(sign with a secret instead). Masked on read.",
        examples=["https://example.com/hooks/alerts"],
    ),
]
WebhookSecret = Annotated[
    SecretStr,
    Field(
        min_length=16,
        max_length=256,
        description="Signs every request: X-Alerts-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "
        '"<t>.<body>">. Never returned.',
    ),
]
BODY_DESCRIPTION = (
    "A JSON object or array POSTed instead of the event object; its string values may hold "
    "the rule's placeholders ({symbol}, {price}, {rule}, {event_id}...), rendered as strings."
)


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


class WebhookDestinationCreate(_Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "webhook",
                    "url": "https://example.com/hooks/alerts",
                    "secret": "a-long-random-signing-secret",
                },
                {
                    "kind": "webhook",
                    "url": "https://example.com/hooks/bot",
                    "body": {"text": "{symbol} crossed {level}: {price}", "id": "{event_id}"},
                },
            ]
        },
    )

    kind: Literal["webhook"]
    url: WebhookUrl
    secret: WebhookSecret | None = None
    body: dict[str, Any] | list[Any] | None = Field(default=None, description=BODY_DESCRIPTION)
    name: Name | None = None


DestinationCreate = Annotated[
    TelegramDestinationCreate | AppriseDestinationCreate | WebhookDestinationCreate,
    Field(discriminator="kind"),
]


class DestinationUpdate(_Input):
    name: Name | None = None
    enabled: bool | None = Field(
        default=None, description="Re-enabling also clears the reason it was disabled."
    )
    chat_id: ChatId | None = None
    url: AppriseUrl | None = Field(
        default=None, description="An Apprise destination's URL, or a webhook's."
    )
    secret: WebhookSecret | None = Field(
        default=None, description="A webhook's signing secret; null removes it."
    )
    body: dict[str, Any] | list[Any] | None = Field(
        default=None, description=BODY_DESCRIPTION + " Null goes back to the event object."
    )


class DestinationPublic(BaseModel):
    id: int
    kind: Literal["telegram", "apprise", "webhook"]
    name: str
    chat_id: int | None
    url: str | None = Field(description="The Apprise or webhook URL with its secrets masked.")
    signed: bool = Field(default=False, description="A webhook with a signing secret.")
    body: dict[str, Any] | list[Any] | None = Field(
        default=None, description="A webhook's body template, if it has one."
    )
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
