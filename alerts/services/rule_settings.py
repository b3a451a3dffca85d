"""What every rule has besides its kind's fields: the settings a client sends (`RuleSettings`)
and the state the service adds (`RuleState`), with their bounds."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alerts.domain.rules import RuleKind
from alerts.domain.templates import TemplateError, check_template
from alerts.domain.values import Message, Name

MAX_DESTINATIONS = 20
MAX_FALLBACKS = 5
DestinationId = Annotated[int, Field(ge=1, le=2**31 - 1)]
MAX_COOLDOWN_SECONDS = 30 * 24 * 3600
DEFAULT_COOLDOWN_SECONDS = 300


class Trigger(StrEnum):
    """`once`: the rule disables itself after firing; `every`: it fires again after a cooldown."""

    ONCE = "once"
    EVERY = "every"


LATEST_EXPIRY = datetime(2100, 1, 1, tzinfo=UTC)


def utc_expiry(value: datetime | None) -> datetime | None:
    """An expiry in UTC (UTC if it has no offset); ValueError unless before 2100."""
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
    fallback_destination_ids: list[DestinationId] = Field(
        default_factory=list,
        max_length=MAX_FALLBACKS,
        description="Where a firing goes when every delivery to `destination_ids` ended dead "
        "(a chat that blocked the bot, a webhook that refused it); once per firing.",
    )
    urgent: bool = Field(default=False, description="Delivered through quiet hours.")
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

    @field_validator("destination_ids", "fallback_destination_ids")
    @classmethod
    def _distinct_destinations(cls, value: list[int]) -> list[int]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _fallbacks_apart(self) -> RuleSettings:
        both = set(self.destination_ids) & set(self.fallback_destination_ids)
        if both:
            raise ValueError(
                f"fallback_destination_ids: destination {min(both)} is already in "
                "destination_ids; a fallback is a different destination"
            )
        return self

    @field_validator("expires_at")
    @classmethod
    def _aware_expiry(cls, value: datetime | None) -> datetime | None:
        return utc_expiry(value)

    @model_validator(mode="after")
    def _rearm_with_every(self) -> RuleSettings:
        if getattr(self, "rearm_percent", None) is not None and self.trigger is not Trigger.EVERY:
            raise ValueError(
                'rearm_percent: applies to trigger "every" (a "once" rule never fires again)'
            )
        return self

    @model_validator(mode="after")
    def _checked_template(self) -> RuleSettings:
        if self.message is not None:
            try:
                check_template(self.message, RuleKind(getattr(self, "kind")))  # noqa: B009
            except TemplateError as exc:
                raise ValueError(f"message: {exc}") from None
        return self


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
    fallback_destination_ids: list[int]
    urgent: bool
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
