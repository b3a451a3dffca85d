"""The outbox: a fired event and one pending delivery per destination, written by the caller's
transaction (the engine's, with the rule's state change; or a test send's)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from alerts.db.models import Delivery, Destination, Event, RuleDestination, User

TELEGRAM = "telegram"


def rule_destination_ids(session: Session, rule_id: int) -> list[int]:
    """The destinations a rule names, in id order (empty: the owner's own chat)."""
    return list(
        session.exec(
            select(RuleDestination.destination_id)
            .where(RuleDestination.rule_id == rule_id)
            .order_by(col(RuleDestination.destination_id))
        )
    )


def delivery_targets(session: Session, user_id: int, named: list[int]) -> list[int]:
    """Enabled destinations for a firing: the named ones, or else the owner's private chat."""
    stmt = select(Destination.id).where(Destination.user_id == user_id, col(Destination.enabled))
    if named:
        stmt = stmt.where(col(Destination.id).in_(named))
    else:
        telegram_id = session.exec(select(User.telegram_user_id).where(User.id == user_id)).first()
        if telegram_id is None:
            return []
        stmt = stmt.where(Destination.kind == TELEGRAM, Destination.chat_id == telegram_id)
    return [i for i in session.exec(stmt.order_by(col(Destination.id))) if i is not None]


def record_event(
    session: Session,
    *,
    user_id: int,
    rule_id: int | None,
    rule_name: str,
    kind: str,
    symbol: str | None,
    values: dict[str, Any],
    destination_ids: list[int],
    now: datetime,
    after_gap: bool = False,
    test: bool = False,
    dedup_key: str | None = None,
) -> tuple[Event, list[Delivery]]:
    """Add an event and its pending deliveries to the session (the caller commits)."""
    event = Event(
        user_id=user_id,
        rule_id=rule_id,
        rule_name=rule_name,
        kind=kind,
        symbol=symbol,
        values=values,
        after_gap=after_gap,
        test=test,
        dedup_key=dedup_key,
        fired_at=now,
    )
    session.add(event)
    session.flush()
    assert event.id is not None
    deliveries = [
        Delivery(event_id=event.id, destination_id=d, next_attempt_at=now, created_at=now)
        for d in destination_ids
    ]
    session.add_all(deliveries)
    session.flush()
    return event, deliveries
