"""Rules: create, update, switch, delete, test-send (reads are in `alerts.services.rule_reads`,
re-exported here). Every change is logged in `rule_changes` in the same transaction, which is
how a running engine hears of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete as sql_delete
from sqlalchemy import insert
from sqlmodel import Session, col

from alerts.db.models import Account, Rule, RuleChange, RuleDestination, RuleFallback, Ticker
from alerts.db.outbox import delivery_targets, record_event, rule_destination_ids
from alerts.domain.rules import SPEC_TYPES, RuleKind
from alerts.domain.values import format_decimal
from alerts.services.destinations import owned_destination_ids
from alerts.services.errors import Conflict, InvalidInput, LimitReached
from alerts.services.events import event_public
from alerts.services.rule_reads import (
    count_rules,
    list_rules,
    owned_rule,
    public_rule,
    public_rule_from,
    read_rule,
    rule_fallbacks,
    symbol_status,
    symbol_statuses,
)
from alerts.services.rule_schemas import RuleCreate, RulePublic, RuleUpdate, rule_create_adapter
from alerts.services.rule_settings import RuleSettings
from alerts.services.samples import sample_values
from alerts.services.schemas import EventPublic

__all__ = [
    "add_rule",
    "check_owned_account",
    "count_rules",
    "create_rule",
    "delete_rule",
    "list_rules",
    "read_rule",
    "switch_rule",
    "symbol_statuses",
    "test_rule",
    "update_rule",
]

_SETTINGS = set(RuleSettings.model_fields)
_COLUMNS = ("trigger", "cooldown_seconds", "expires_at", "message", "enabled", "urgent")


def _spec_params(data: BaseModel) -> dict[str, Any]:
    return data.model_dump(mode="json", exclude=_SETTINGS | {"kind"})


def _default_name(data: BaseModel) -> str:
    spec = SPEC_TYPES[RuleKind(getattr(data, "kind"))]  # noqa: B009
    return spec.model_validate(data.model_dump(exclude=_SETTINGS)).describe()[:100]


def check_owned_account(session: Session, user_id: int, account_id: int) -> None:
    """Raise InvalidInput unless the account is the user's."""
    row = session.get(Account, account_id)
    if row is None or row.user_id != user_id:
        raise InvalidInput(
            "account_id", f"account {account_id} does not exist (see GET /v1/accounts)"
        )


def _check_references(
    session: Session,
    user_id: int,
    *,
    destination_ids: list[int],
    fallbacks: list[int],
    account_id: int | None,
    expires_at: datetime | None,
    now: datetime,
) -> None:
    owned_destination_ids(session, user_id, destination_ids)
    owned_destination_ids(session, user_id, fallbacks, field="fallback_destination_ids")
    if account_id is not None:
        check_owned_account(session, user_id, account_id)
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expires_at", "expires_at is in the past")


def _write_links(
    session: Session,
    rule_id: int,
    destination_ids: list[int],
    fallbacks: list[int],
    *,
    now: datetime,
) -> None:
    # Core statements, not the ORM's unit of work, which would double the cost of a create
    # (rule creation rate is a goal: bench/api.py).
    for table, ids in ((RuleDestination, destination_ids), (RuleFallback, fallbacks)):
        if ids:
            session.exec(
                insert(table), params=[{"rule_id": rule_id, "destination_id": d} for d in ids]
            )
    session.exec(insert(RuleChange).values(rule_id=rule_id, changed_at=now))


def _columns(data: BaseModel) -> dict[str, Any]:
    return {
        "params": _spec_params(data),
        "symbol": getattr(data, "symbol", None),
        "account_id": getattr(data, "account_id", None),
        **{field: getattr(data, field) for field in _COLUMNS},
    }


def add_rule(session: Session, user_id: int, data: RuleCreate, *, now: datetime) -> RulePublic:
    """Add a new rule to the session (the caller commits), after checking what it names."""
    destination_ids = list(data.destination_ids)
    fallbacks = list(data.fallback_destination_ids)
    _check_references(
        session,
        user_id,
        destination_ids=destination_ids,
        fallbacks=fallbacks,
        account_id=getattr(data, "account_id", None),
        expires_at=data.expires_at,
        now=now,
    )
    values: dict[str, Any] = {
        "user_id": user_id,
        "kind": data.kind,
        "name": data.name or _default_name(data),
        **_columns(data),
        "fire_count": 0,
        "created_at": now,
        "updated_at": now,
    }
    rule_id = session.exec(insert(Rule).values(**values).returning(col(Rule.id))).scalar_one()
    _write_links(session, rule_id, destination_ids, fallbacks, now=now)
    status = symbol_status(session, values["symbol"])
    return public_rule_from({**values, "id": rule_id}, destination_ids, status, fallbacks=fallbacks)


def create_rule(
    session: Session, user_id: int, data: RuleCreate, *, now: datetime, max_rules: int | None = None
) -> RulePublic:
    """Store a new rule after checking that what it names is the user's, and that the user
    has fewer than `max_rules` rules (ALERTS_MAX_RULES_PER_USER, for the API and bot alike)."""
    if max_rules is not None and count_rules(session, user_id) >= max_rules:
        raise LimitReached(
            f"you have {max_rules} rules, the most this service allows a user; "
            "delete some before creating more"
        )
    rule = add_rule(session, user_id, data, now=now)
    session.commit()
    return rule


def update_rule(
    session: Session, user_id: int, rule_id: int, data: RuleUpdate, *, now: datetime
) -> RulePublic:
    """Change the fields given; the merged rule is validated as a whole, like a new one."""
    row = owned_rule(session, user_id, rule_id)
    patch = data.model_dump(exclude_unset=True)
    kind = patch.pop("kind", None)
    if kind is not None and kind != row.kind:
        raise InvalidInput("kind", "a rule's kind cannot change; create a new rule instead")
    current_destinations = rule_destination_ids(session, rule_id)
    current: dict[str, Any] = {
        **row.params,
        "kind": row.kind,
        "destination_ids": current_destinations,
        "fallback_destination_ids": rule_fallbacks(session, [rule_id]).get(rule_id, []),
        **{field: getattr(row, field) for field in _COLUMNS},
    }
    old = rule_create_adapter.validate_python(current)
    merged = rule_create_adapter.validate_python(
        {k: v for k, v in {**current, **patch}.items() if v is not None or k in patch}
    )
    _check_references(  # only what this request changes: an old expiry may have passed
        session,
        user_id,
        destination_ids=patch.get("destination_ids") or [],
        fallbacks=patch.get("fallback_destination_ids") or [],
        account_id=patch.get("account_id"),
        expires_at=patch.get("expires_at"),
        now=now,
    )
    if "name" in patch:
        row.name = patch["name"] or _default_name(merged)
    elif row.name == _default_name(old):
        row.name = _default_name(merged)  # a name we made follows the fields it was made from
    for field, value in _columns(merged).items():
        setattr(row, field, value)
    row.state = None  # a changed rule starts afresh (no re-arm wait)
    row.updated_at = now
    session.add(row)
    session.exec(sql_delete(RuleDestination).where(col(RuleDestination.rule_id) == rule_id))
    session.exec(sql_delete(RuleFallback).where(col(RuleFallback.rule_id) == rule_id))
    destinations, fallbacks = list(merged.destination_ids), list(merged.fallback_destination_ids)
    _write_links(session, rule_id, destinations, fallbacks, now=now)
    session.commit()
    return public_rule(row, destinations, symbol_status(session, row.symbol), fallbacks=fallbacks)


def switch_rule(
    session: Session,
    user_id: int,
    rule_id: int,
    *,
    now: datetime,
    enabled: bool | None = None,
    snoozed_until: datetime | None = None,
) -> RulePublic:
    """Turn a rule on or off, or snooze it until a time (what the bot's buttons do)."""
    row = owned_rule(session, user_id, rule_id)
    if enabled is not None:
        row.enabled = enabled
    if snoozed_until is not None:
        row.snoozed_until = snoozed_until
    row.updated_at = now
    session.add(row)
    session.add(RuleChange(rule_id=rule_id, changed_at=now))
    session.commit()
    return public_rule(
        row,
        rule_destination_ids(session, rule_id),
        symbol_status(session, row.symbol),
        fallbacks=rule_fallbacks(session, [rule_id]).get(rule_id, []),
    )


def delete_rule(session: Session, user_id: int, rule_id: int, *, now: datetime) -> None:
    """Remove a rule; its past events stay, with rule_id cleared."""
    row = owned_rule(session, user_id, rule_id)
    session.delete(row)
    session.add(RuleChange(rule_id=rule_id, changed_at=now))
    session.commit()


def _sample_values(row: Rule, price: str | None, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {k: v for k, v in row.params.items() if v is not None}
    values.update(sample_values(RuleKind(row.kind), row.params, price))
    values.update(rule=row.name, kind=row.kind, time=now.isoformat(), test=True)
    return values


def test_rule(session: Session, user_id: int, rule_id: int, *, now: datetime) -> EventPublic:
    """Queue a test message through the same outbox as real alerts."""
    row = owned_rule(session, user_id, rule_id)
    targets = delivery_targets(session, user_id, rule_destination_ids(session, rule_id))
    if not targets:
        raise Conflict(
            "this rule has no enabled destination: give it destination_ids, "
            "or link your Telegram chat with /start in the bot"
        )
    ticker = session.get(Ticker, row.symbol) if row.symbol else None
    price = format_decimal(ticker.last) if ticker is not None and ticker.last else None
    event, deliveries = record_event(
        session,
        user_id=user_id,
        rule_id=row.id,
        rule_name=row.name,
        kind=row.kind,
        symbol=row.symbol,
        values=_sample_values(row, price, now),
        destination_ids=targets,
        now=now,
        test=True,
    )
    session.commit()
    return event_public(event, deliveries)
