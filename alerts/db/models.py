"""Tables. Request and response models live apart, in `alerts.services.schemas`.

Every resource row carries its owner's `user_id`; queries filter on it first, and each list
index starts with it so that one user's page never scans another user's rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Text, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from alerts.db.types import BigId, DecimalText, UTCDateTime


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class User(SQLModel, table=True):
    """A person using the service; owns everything else."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    telegram_user_id: int | None = Field(default=None, sa_type=BigInteger, unique=True)
    # Until then the user's deliveries are held, and sent as one summary when it ends.
    muted_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # An IANA name; quiet hours ("HH:MM" to "HH:MM", in that zone; the end may be the next
    # day) hold non-urgent deliveries, sent as one digest per destination when they end.
    timezone: str = Field(default="UTC", max_length=64, sa_column_kwargs={"server_default": "UTC"})
    quiet_start: str | None = Field(default=None, max_length=5)
    quiet_end: str | None = Field(default=None, max_length=5)
    created_at: datetime = _created()


class ApiKey(SQLModel, table=True):
    """A user's API key, stored as a hash; `hint` is its first characters, for display."""

    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=100)
    hint: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _created()


class Destination(SQLModel, table=True):
    """Where alerts go: a Telegram chat, or an Apprise URL kept encrypted."""

    __tablename__ = "destinations"
    __table_args__ = (
        UniqueConstraint("user_id", "chat_id", name="uq_destinations_user_chat"),
        Index("ix_destinations_user_id_id", "user_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    kind: str = Field(max_length=16)
    name: str = Field(max_length=100)
    chat_id: int | None = Field(default=None, sa_type=BigInteger)
    url_sealed: str | None = Field(default=None, sa_type=Text)
    url_masked: str | None = Field(default=None, sa_type=Text)
    # Webhooks: the signing secret (encrypted; never returned) and the body template, if any.
    secret_sealed: str | None = Field(default=None, sa_type=Text)
    body: Any | None = Field(default=None, sa_type=JSON)
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=300)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class TelegramChat(SQLModel, table=True):
    """A Telegram chat its user proved theirs: one where they sent /start (as an administrator,
    in a group) or /link with one of their codes. A user's own private chat (its id is their
    `telegram_user_id`) needs no row. Telegram destinations may name only these chats."""

    __tablename__ = "telegram_chats"

    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    chat_id: int = Field(sa_type=BigInteger, primary_key=True)
    proof: str = Field(max_length=16)  # "start" or "link"
    proven_at: datetime = _created()


class TelegramLinkCode(SQLModel, table=True):
    """A code that links a chat to its owner when sent there as `/link CODE`: stored as a
    hash, single use, short-lived."""

    __tablename__ = "telegram_link_codes"

    code_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    created_at: datetime = _created()


class Account(SQLModel, table=True):
    """A linked xRocket account; its API token is stored encrypted and never returned."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_accounts_user_name"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=100)
    token_sealed: str = Field(sa_type=Text)
    status: str = Field(default="active", max_length=16)
    status_reason: str | None = Field(default=None, max_length=300)
    notify_orders: bool = True
    notify_balances: bool = True
    # The rules that carry those notifications, made when the account is linked. No foreign
    # key (rules already point at accounts): a rule the user deleted is simply made again.
    orders_rule_id: int | None = Field(default=None, sa_type=BigInteger)
    balances_rule_id: int | None = Field(default=None, sa_type=BigInteger)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Rule(SQLModel, table=True):
    """One alert rule. `params` holds the kind's spec; `symbol` and `account_id` are copied out
    of it for indexing. `state` is the engine's memory of the rule between pushes."""

    __tablename__ = "rules"
    __table_args__ = (
        Index("ix_rules_user_id_id", "user_id", "id"),
        Index("ix_rules_user_id_kind_id", "user_id", "kind", "id"),
        Index("ix_rules_user_id_symbol_id", "user_id", "symbol", "id"),
        Index("ix_rules_user_id_enabled_id", "user_id", "enabled", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    kind: str = Field(max_length=20)
    name: str = Field(max_length=100)
    symbol: str | None = Field(default=None, max_length=40)
    # CASCADE, so that deleting a user cascades through accounts and rules in any order;
    # deleting an account that rules still use is refused by the service (409) beforehand.
    account_id: int | None = Field(
        default=None, foreign_key="accounts.id", ondelete="CASCADE", index=True
    )
    params: dict[str, Any] = Field(sa_type=JSON)
    trigger: str = Field(default="once", max_length=8)
    cooldown_seconds: int = 0
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    message: str | None = Field(default=None, sa_type=Text)
    enabled: bool = True
    snoozed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    fire_count: int = 0
    last_fired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    state: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    urgent: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = _created()
    updated_at: datetime = _created()


class RuleDestination(SQLModel, table=True):
    """Which destinations a rule delivers to; none means the owner's own Telegram chat."""

    __tablename__ = "rule_destinations"

    rule_id: int = Field(foreign_key="rules.id", ondelete="CASCADE", primary_key=True)
    # CASCADE for the same reason as Rule.account_id; the service refuses a destination in use.
    destination_id: int = Field(
        foreign_key="destinations.id", ondelete="CASCADE", primary_key=True, index=True
    )


class RuleFallback(SQLModel, table=True):
    """Where a rule's firing goes when every delivery to its own destinations ended dead (a
    blocked chat, a refused webhook): once per firing."""

    __tablename__ = "rule_fallbacks"

    rule_id: int = Field(foreign_key="rules.id", ondelete="CASCADE", primary_key=True)
    destination_id: int = Field(
        foreign_key="destinations.id", ondelete="CASCADE", primary_key=True, index=True
    )


class RuleChange(SQLModel, table=True):
    """A log of rule edits, written in the edit's transaction; the engine follows it by id,
    so changes (deletions included) reach it from any process within its poll interval."""

    __tablename__ = "rule_changes"

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    rule_id: int = Field(index=True)
    changed_at: datetime = _created()


class Ticker(SQLModel, table=True):
    """The latest prices seen per symbol; also the last price before a gap, for crossings."""

    __tablename__ = "tickers"

    symbol: str = Field(primary_key=True, max_length=40)
    last: Decimal | None = Field(default=None, sa_type=DecimalText)
    bid: Decimal | None = Field(default=None, sa_type=DecimalText)
    ask: Decimal | None = Field(default=None, sa_type=DecimalText)
    change_percent: Decimal | None = Field(default=None, sa_type=DecimalText)
    exchange_time: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = _created()


class Event(SQLModel, table=True):
    """A rule that fired, with every value a message needs. `dedup_key` makes the same
    occurrence (say, an order status pushed twice) fire only once per rule."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("rule_id", "dedup_key", name="uq_events_rule_dedup"),
        Index("ix_events_user_id_id", "user_id", "id"),
        Index("ix_events_rule_id_id", "rule_id", "id"),
        Index("ix_events_fired_at", "fired_at"),  # pruning what is past its retention
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE")
    rule_id: int | None = Field(default=None, foreign_key="rules.id", ondelete="SET NULL")
    rule_name: str = Field(max_length=100)
    kind: str = Field(max_length=20)
    symbol: str | None = Field(default=None, max_length=40)
    values: dict[str, Any] = Field(sa_type=JSON)
    after_gap: bool = False
    test: bool = False
    dedup_key: str | None = Field(default=None, max_length=200)
    fired_at: datetime = _created()
    # Its rule's fallback destinations were given it (every primary delivery ended dead).
    fell_back: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class Delivery(SQLModel, table=True):
    """One event to one destination: the outbox row that delivery workers claim."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "destination_id", name="uq_deliveries_event_destination"),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    event_id: int = Field(
        sa_column=Column(BigId, ForeignKey("events.id", ondelete="CASCADE"), nullable=False)
    )
    destination_id: int | None = Field(
        default=None, foreign_key="destinations.id", ondelete="SET NULL", index=True
    )
    status: str = Field(default="pending", max_length=10)
    attempts: int = 0
    next_attempt_at: datetime = _created()
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
    # Held while its user was muted: it goes out in the summary sent when the mute ends.
    held: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    hold_reason: str | None = Field(default=None, max_length=8)  # "mute" or "quiet"
    # To a fallback destination of the rule, after every primary delivery ended dead.
    fallback: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    created_at: datetime = _created()
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DeliveryAttempt(SQLModel, table=True):
    """One try at sending a delivery, kept for the record."""

    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    delivery_id: int = Field(
        sa_column=Column(
            BigId, ForeignKey("deliveries.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    started_at: datetime = _created()
    outcome: str = Field(max_length=10)
    error: str | None = Field(default=None, sa_type=Text)
    duration_ms: int = 0


class EngineState(SQLModel, table=True):
    """Small pieces of engine memory that must survive a restart (e.g. an account's last
    balances, so a change during the downtime is still noticed)."""

    __tablename__ = "engine_state"

    key: str = Field(primary_key=True, max_length=100)
    value: dict[str, Any] = Field(sa_type=JSON)
    updated_at: datetime = _created()


class DeadLetter(SQLModel, table=True):
    """Something the engine could not record even on its own (a hit, a price, balances): kept
    here with the error, so that one bad row never holds up the others."""

    __tablename__ = "dead_letters"

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True))
    kind: str = Field(max_length=16)
    rule_id: int | None = Field(default=None, sa_type=BigInteger)
    symbol: str | None = Field(default=None, max_length=40)
    payload: dict[str, Any] = Field(sa_type=JSON)
    error: str = Field(sa_type=Text)
    created_at: datetime = _created()


class SymbolStatus(SQLModel, table=True):
    """A symbol the exchange refused to stream (not found, not available, not open), and why;
    the rules on it show this status. Gone once a subscription to it succeeds."""

    __tablename__ = "symbol_status"

    symbol: str = Field(primary_key=True, max_length=40)
    status: str = Field(max_length=100)
    since: datetime = _created()
