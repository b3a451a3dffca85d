"""Request and response models for destinations: Telegram chats, Apprise URLs and webhooks.
Create and Update models refuse unknown fields; Public models never show a secret."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from alerts.domain.values import Name
from alerts.services.schemas import MAX_CHAT_ID

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
