"""The outbox: a fired event and one pending delivery per destination, written by the caller's
transaction (the engine's, with the rule's state change; or a test send's).

Routing (which destinations a firing goes to) lives in `route` alone; the single-firing
helpers are its one-key case, so the engine's batched writes and a test send agree."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import Session

from alerts.db.driver import Cursor, marks
from alerts.db.models import Delivery, Event
from alerts.db.queue import PENDING, SENDING, Job

TELEGRAM = "telegram"

K = TypeVar("K", bound=Hashable)

_EVENTS = Event.metadata.tables["events"]
_DELIVERIES = Delivery.metadata.tables["deliveries"]

# Routing runs for every firing the engine records: SQL on the driver (see alerts.db.driver).
_NAMED = "SELECT rule_id, destination_id FROM rule_destinations WHERE rule_id IN ({})"
_ENABLED = (
    "SELECT id, user_id, kind, chat_id, url_sealed FROM destinations WHERE enabled AND id IN ({})"
)
_PRIVATE_CHATS = (
    "SELECT u.id, d.id, d.kind, d.chat_id, d.url_sealed FROM users u"
    " JOIN destinations d ON d.user_id = u.id"
    " WHERE u.id IN ({}) AND d.enabled AND d.kind = ? AND d.chat_id = u.telegram_user_id"
)


@dataclass(frozen=True, slots=True)
class Target:
    """An enabled destination a firing goes to, with what sending to it takes."""

    id: int
    kind: str
    chat_id: int | None
    url_sealed: str | None


def rule_destinations(cursor: Cursor, rule_ids: Collection[int]) -> dict[int, list[int]]:
    """The destinations each rule names, in id order (a rule naming none is left out)."""
    named: dict[int, list[int]] = {}
    if rule_ids:
        ids = sorted(rule_ids)
        for rule_id, destination_id in cursor.rows(_NAMED.format(marks(len(ids))), ids):
            named.setdefault(rule_id, []).append(destination_id)
    return {rule_id: sorted(ids) for rule_id, ids in named.items()}


def rule_destination_ids(session: Session, rule_id: int) -> list[int]:
    """The destinations a rule names, in id order (empty: the owner's own chat)."""
    return rule_destinations(Cursor(session), [rule_id]).get(rule_id, [])


def route(cursor: Cursor, firings: Mapping[K, tuple[int, Sequence[int]]]) -> dict[K, list[Target]]:
    """Enabled destinations for many firings at once, each given as (owner, named
    destinations): the named ones the owner has enabled, or else the owner's private
    Telegram chat; in id order. Two queries at most, whatever the number of firings."""
    named = sorted({d for _, ids in firings.values() for d in ids})
    default_owners = sorted({user for user, ids in firings.values() if not ids})
    enabled: dict[int, tuple[int, Target]] = {}
    if named:
        for d, user, kind, chat, url in cursor.rows(_ENABLED.format(marks(len(named))), named):
            enabled[d] = (user, Target(d, kind, chat, url))
    private: dict[int, list[Target]] = {}
    if default_owners:
        sql = _PRIVATE_CHATS.format(marks(len(default_owners)))
        for user, d, kind, chat, url in cursor.rows(sql, [*default_owners, TELEGRAM]):
            private.setdefault(user, []).append(Target(d, kind, chat, url))
    routes: dict[K, list[Target]] = {}
    for key, (user, ids) in firings.items():
        if ids:
            owned = {d: enabled[d][1] for d in ids if d in enabled and enabled[d][0] == user}
            routes[key] = [owned[d] for d in sorted(owned)]
        else:
            routes[key] = sorted(private.get(user, []), key=lambda t: t.id)
    return routes


def delivery_targets(session: Session, user_id: int, named: list[int]) -> list[int]:
    """Enabled destinations for a firing: the named ones, or else the owner's private chat."""
    return [t.id for t in route(Cursor(session), {0: (user_id, named)})[0]]


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A firing to record: the event's fields, where it goes, and what rendering its message
    takes (the rule's template; the owner's mute, which holds it back)."""

    user_id: int
    rule_id: int | None
    rule_name: str
    kind: str
    symbol: str | None
    values: dict[str, Any]
    targets: list[Target]
    fired_at: datetime
    after_gap: bool = False
    dedup_key: str | None = None
    template: str | None = None
    muted_until: datetime | None = None


_EVENT_COLUMNS = (
    "user_id", "rule_id", "rule_name", "kind", "symbol", "values", "after_gap", "test",
    "dedup_key", "fired_at",
)  # fmt: skip
_DELIVERY_COLUMNS = (
    "event_id", "destination_id", "status", "attempts", "next_attempt_at", "lease_until",
    "held", "created_at",
)  # fmt: skip


def record_events(
    cursor: Cursor,
    events: Sequence[NewEvent],
    *,
    now: datetime,
    lease_until: datetime | None = None,
) -> list[Job]:
    """Add events and their pending deliveries, a statement per table for hundreds of rows
    (the caller commits); returns the new deliveries as jobs, in no set order. With
    `lease_until`, the deliveries are added claimed (being sent, their first attempt
    counted) until then, for the caller to send; those of an owner muted at `now` are held
    instead, until the mute ends, and left out."""
    if not events:
        return []
    event_ids = _insert_events(cursor, events)
    held = [
        lease_until is not None and e.muted_until is not None and e.muted_until > now
        for e in events
    ]
    rows: list[tuple[Any, ...]] = []
    for event_id, e, e_held in zip(event_ids, events, held, strict=True):
        # status, attempts, next attempt, lease, held
        state: tuple[Any, ...] = (PENDING, 0, e.fired_at, None, False)
        if e_held:
            state = (PENDING, 0, e.muted_until, None, True)
        elif lease_until is not None:
            state = (SENDING, 1, e.fired_at, lease_until, False)
        rows += [(event_id, t.id, *state, e.fired_at) for t in e.targets]
    if not rows:
        return []
    returned = cursor.insert(
        _DELIVERIES, _DELIVERY_COLUMNS, rows, returning=("id", "event_id", "destination_id")
    )
    ids = {(event_id, d): delivery_id for delivery_id, event_id, d in returned}
    return [
        Job(
            delivery_id=ids[event_id, t.id],
            attempts=1 if lease_until is not None else 0,
            created_at=e.fired_at,
            destination_id=t.id,
            destination_kind=t.kind,
            destination_enabled=True,
            disabled_reason=None,
            chat_id=t.chat_id,
            url_sealed=t.url_sealed,
            event_id=event_id,
            event_kind=e.kind,
            rule_id=e.rule_id,
            rule_name=e.rule_name,
            template=e.template,
            values=e.values,
            test=False,
            after_gap=e.after_gap,
            fired_at=e.fired_at,
            muted_until=e.muted_until,
        )
        for event_id, e, e_held in zip(event_ids, events, held, strict=True)
        if not e_held
        for t in e.targets
    ]


def _insert_events(cursor: Cursor, events: Sequence[NewEvent]) -> list[int]:
    """The events' new ids, in the order of `events`."""
    rows = [
        (
            e.user_id,
            e.rule_id,
            e.rule_name,
            e.kind,
            e.symbol,
            e.values,
            e.after_gap,
            False,
            e.dedup_key,
            e.fired_at,
        )
        for e in events
    ]
    # The ids come back in no set order, with what tells the rows apart: owner, rule, time and
    # occurrence. Two alike (one rule firing twice at the same instant) go one at a time.
    keys = [(e.user_id, e.rule_id, e.fired_at, e.dedup_key) for e in events]
    if len(set(keys)) < len(keys):
        return [
            cursor.insert(_EVENTS, _EVENT_COLUMNS, [row], returning=("id",))[0][0] for row in rows
        ]
    returning = ("id", "user_id", "rule_id", "fired_at", "dedup_key")
    returned = cursor.insert(_EVENTS, _EVENT_COLUMNS, rows, returning=returning)
    ids = {tuple(row[1:]): row[0] for row in returned}
    return [ids[k] for k in keys]


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
