"""The outbox: a fired event and one pending delivery per destination, written by the caller's
transaction (the engine's, with the rule's state change; or a test send's).

Routing (which destinations a firing goes to) lives in `route` alone; the single-firing
helpers are its one-key case, so the engine's batched writes and a test send agree."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, insert, select
from sqlmodel import Session

from alerts.db.models import Delivery, Destination, Event, RuleDestination, User
from alerts.db.queue import SENDING

TELEGRAM = "telegram"

K = TypeVar("K", bound=Hashable)

_EVENTS = Event.metadata.tables["events"]
_DELIVERIES = Delivery.metadata.tables["deliveries"]
_DESTINATIONS = Destination.metadata.tables["destinations"]
_RULE_DESTINATIONS = RuleDestination.metadata.tables["rule_destinations"]
_USERS = User.metadata.tables["users"]

# Built once, with parameters: the engine routes every firing through these.
_NAMED = (
    select(_RULE_DESTINATIONS.c.rule_id, _RULE_DESTINATIONS.c.destination_id)
    .where(_RULE_DESTINATIONS.c.rule_id.in_(bindparam("ids", expanding=True)))
    .order_by(_RULE_DESTINATIONS.c.rule_id, _RULE_DESTINATIONS.c.destination_id)
)
_ENABLED = select(_DESTINATIONS.c.id, _DESTINATIONS.c.user_id).where(
    _DESTINATIONS.c.id.in_(bindparam("ids", expanding=True)), _DESTINATIONS.c.enabled
)
_PRIVATE_CHATS = (
    select(_USERS.c.id, _DESTINATIONS.c.id)
    .join(_DESTINATIONS, _DESTINATIONS.c.user_id == _USERS.c.id)
    .where(
        _USERS.c.id.in_(bindparam("ids", expanding=True)),
        _DESTINATIONS.c.enabled,
        _DESTINATIONS.c.kind == TELEGRAM,
        _DESTINATIONS.c.chat_id == _USERS.c.telegram_user_id,
    )
    .order_by(_DESTINATIONS.c.id)
)


def rule_destinations(session: Session, rule_ids: Collection[int]) -> dict[int, list[int]]:
    """The destinations each rule names, in id order (a rule naming none is left out)."""
    named: dict[int, list[int]] = {}
    if rule_ids:
        for rule_id, destination_id in session.execute(_NAMED, {"ids": sorted(rule_ids)}):
            named.setdefault(rule_id, []).append(destination_id)
    return named


def rule_destination_ids(session: Session, rule_id: int) -> list[int]:
    """The destinations a rule names, in id order (empty: the owner's own chat)."""
    return rule_destinations(session, [rule_id]).get(rule_id, [])


def route(session: Session, firings: Mapping[K, tuple[int, Sequence[int]]]) -> dict[K, list[int]]:
    """Enabled destinations for many firings at once, each given as (owner, named
    destinations): the named ones the owner has enabled, or else the owner's private
    Telegram chat; in id order. Two queries at most, whatever the number of firings."""
    named = sorted({d for _, ids in firings.values() for d in ids})
    default_owners = sorted({user for user, ids in firings.values() if not ids})
    owner_of: dict[int, int] = {}
    if named:
        owner_of = {d: user for d, user in session.execute(_ENABLED, {"ids": named})}
    private: dict[int, list[int]] = {}
    if default_owners:
        for user, d in session.execute(_PRIVATE_CHATS, {"ids": default_owners}):
            private.setdefault(user, []).append(d)
    return {
        key: sorted({d for d in ids if owner_of.get(d) == user}) if ids else private.get(user, [])
        for key, (user, ids) in firings.items()
    }


def delivery_targets(session: Session, user_id: int, named: list[int]) -> list[int]:
    """Enabled destinations for a firing: the named ones, or else the owner's private chat."""
    return route(session, {0: (user_id, named)})[0]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A firing to record: the event's fields and where it goes."""

    user_id: int
    rule_id: int | None
    rule_name: str
    kind: str
    symbol: str | None
    values: dict[str, Any]
    destination_ids: list[int]
    fired_at: datetime
    after_gap: bool = False
    dedup_key: str | None = None


def record_events(
    session: Session, events: Sequence[NewEvent], *, lease_until: datetime | None = None
) -> list[int]:
    """Add events and their pending deliveries, each table in one statement for all the rows
    (the caller commits); returns the new deliveries' ids, in no particular order. With
    `lease_until`, the deliveries are added claimed (being sent, their first attempt
    counted) until then, for the caller to send."""
    if not events:
        return []
    event_ids = _insert_events(session, events)
    leased: dict[str, Any] = {}
    if lease_until is not None:
        leased = {"status": SENDING, "lease_until": lease_until, "attempts": 1}
    rows = [
        {
            "event_id": event_id,
            "destination_id": d,
            "next_attempt_at": e.fired_at,
            "created_at": e.fired_at,
            **leased,
        }
        for event_id, e in zip(event_ids, events, strict=True)
        for d in e.destination_ids
    ]
    if not rows:
        return []
    # In any order: that takes one statement (in order, SQLite would take one per row).
    inserted = session.execute(insert(_DELIVERIES).returning(_DELIVERIES.c.id), rows)
    return [int(i) for i in inserted.scalars()]


def _insert_events(session: Session, events: Sequence[NewEvent]) -> list[int]:
    """The events' new ids, in the order of `events`."""
    params = [
        {
            "user_id": e.user_id,
            "rule_id": e.rule_id,
            "rule_name": e.rule_name,
            "kind": e.kind,
            "symbol": e.symbol,
            "values": e.values,
            "after_gap": e.after_gap,
            "test": False,
            "dedup_key": e.dedup_key,
            "fired_at": e.fired_at,
        }
        for e in events
    ]
    # Asked for in order, SQLite takes one statement per row. In one statement the ids come
    # back in no set order, with the owner and rule that tell them apart: events that share
    # those (one rule firing twice in a batch) go to the same destinations at the same time,
    # so which of them gets which id changes nothing. Otherwise, in order.
    keys = [(e.user_id, e.rule_id) for e in events]
    alike: dict[tuple[int, int | None], tuple[Sequence[int], datetime]] = {}
    if all(
        alike.setdefault(k, (e.destination_ids, e.fired_at)) == (e.destination_ids, e.fired_at)
        for k, e in zip(keys, events, strict=True)
    ):
        returned = session.execute(
            insert(_EVENTS).returning(_EVENTS.c.id, _EVENTS.c.user_id, _EVENTS.c.rule_id), params
        )
        ids: dict[tuple[int, int | None], list[int]] = {}
        for event_id, user_id, rule_id in returned:
            ids.setdefault((user_id, rule_id), []).append(event_id)
        return [ids[k].pop() for k in keys]
    ordered = insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)
    return list(session.execute(ordered, params).scalars())


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
