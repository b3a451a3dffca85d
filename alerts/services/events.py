"""Fired events and their deliveries, as their owner sees them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from alerts.db.models import Delivery, Event
from alerts.services.errors import NotFound
from alerts.services.schemas import DeliveryPublic, EventPage, EventPublic


def event_public(event: Event, deliveries: Sequence[Delivery]) -> EventPublic:
    """An event with its deliveries, as the API shows it."""
    return EventPublic(
        id=event.id or 0,
        rule_id=event.rule_id,
        rule_name=event.rule_name,
        kind=event.kind,
        symbol=event.symbol,
        values=event.values,
        after_gap=event.after_gap,
        test=event.test,
        fired_at=event.fired_at,
        deliveries=[DeliveryPublic.model_validate(d, from_attributes=True) for d in deliveries],
    )


def _with_deliveries(session: Session, events: list[Event]) -> list[EventPublic]:
    by_event: dict[int, list[Delivery]] = {e.id: [] for e in events if e.id is not None}
    if by_event:
        rows = session.exec(
            select(Delivery)
            .where(col(Delivery.event_id).in_(list(by_event)))
            .order_by(col(Delivery.id))
        )
        for d in rows:
            by_event[d.event_id].append(d)
    return [event_public(e, by_event.get(e.id or 0, [])) for e in events]


def list_events(
    session: Session,
    user_id: int,
    *,
    rule_id: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> EventPage:
    """One page of the user's events, newest first."""
    stmt = select(Event).where(Event.user_id == user_id)
    if rule_id is not None:
        stmt = stmt.where(Event.rule_id == rule_id)
    if before is not None:
        stmt = stmt.where(col(Event.id) < before)
    rows = list(session.exec(stmt.order_by(col(Event.id).desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = str(rows[-1].id) if more and rows else None
    return EventPage(items=_with_deliveries(session, rows), next_cursor=next_cursor)


def read_event(session: Session, user_id: int, event_id: int) -> EventPublic:
    """One of the user's events."""
    event = session.get(Event, event_id)
    if event is None or event.user_id != user_id:
        raise NotFound("event", event_id)
    return _with_deliveries(session, [event])[0]
