"""Fallback routes: a firing whose every delivery to its rule's own destinations ended dead
(a chat that blocked the bot, a webhook that refused it, a destination disabled meanwhile)
goes to the rule's fallback destinations, once.

Decided where outcomes are recorded (`alerts.db.queue.outcomes`), in the same transaction.
Two workers may record the last two dead deliveries of one event at the same time; each
locks the event's row first (`FOR UPDATE` on PostgreSQL; SQLite has one writer anyway), so
the second sees the first's outcome and the event's `fell_back` mark, and nothing is sent to
the fallbacks twice. The new deliveries go in pending, marked `fallback` (the event then
shows both), and wake the workers as any enqueued delivery does."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.orm import Session

from alerts.db.doorbell import CHANNEL, ring_on_commit
from alerts.db.models import Delivery, Destination, Event, RuleFallback
from alerts.db.queue.statements import DEAD, PENDING

_EVENTS = Event.metadata.tables["events"]
_DELIVERIES = Delivery.metadata.tables["deliveries"]
_DESTINATIONS = Destination.metadata.tables["destinations"]
_FALLBACKS = RuleFallback.metadata.tables["rule_fallbacks"]
_E, _D, _F = _EVENTS.c, _DELIVERIES.c, _FALLBACKS.c

_WITH_FALLBACKS = select(_F.rule_id).where(_F.rule_id.in_(bindparam("ids", expanding=True)))
_EVENT = (
    select(_E.rule_id, _E.user_id, _E.fell_back)
    .where(_E.id == bindparam("event_id"))
    .with_for_update()
)
_OPEN = select(func.count()).where(
    _D.event_id == bindparam("event_id"), _D.fallback.is_(False), _D.status != DEAD
)
_TARGETS = (
    select(_F.destination_id)
    .join(_DESTINATIONS, _DESTINATIONS.c.id == _F.destination_id)
    .where(
        _F.rule_id == bindparam("rule_id"),
        _DESTINATIONS.c.user_id == bindparam("user_id"),
        _DESTINATIONS.c.enabled,
    )
    .order_by(_F.destination_id)
)
_MARK = update(_EVENTS).where(_E.id == bindparam("event_id")).values(fell_back=True)
_ADD = insert(_DELIVERIES)
_NOTIFY = text(f"NOTIFY {CHANNEL}")


def fall_back(
    session: Session, dead: Collection[tuple[int, int | None]], now: datetime
) -> list[int]:
    """For the events of deliveries just recorded dead, given as (event id, rule id): those
    whose rule has fallbacks and whose every primary delivery is dead get them, once (in the
    caller's transaction). Returns the new deliveries' ids."""
    rule_ids = sorted({rule for _, rule in dead if rule is not None})
    if not rule_ids:
        return []
    with_fallbacks = set(session.execute(_WITH_FALLBACKS, {"ids": rule_ids}).scalars())
    events = sorted({event for event, rule in dead if rule in with_fallbacks})
    added: list[int] = []
    for event_id in events:  # in id order, so two workers lock them in the same order
        row = session.execute(_EVENT, {"event_id": event_id}).first()
        if row is None or row.fell_back or row.rule_id is None:
            continue
        if session.execute(_OPEN, {"event_id": event_id}).scalar_one():
            continue  # a primary delivery is still pending, retrying or sent
        session.execute(_MARK, {"event_id": event_id})
        params = {"rule_id": row.rule_id, "user_id": row.user_id}
        for destination_id in session.execute(_TARGETS, params).scalars():
            result = session.execute(
                _ADD.values(
                    event_id=event_id,
                    destination_id=destination_id,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    held=False,
                    fallback=True,
                    created_at=now,
                ).returning(_D.id)
            )
            added.append(result.scalar_one())
    if added:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_NOTIFY)
        ring_on_commit(session)
    return added
