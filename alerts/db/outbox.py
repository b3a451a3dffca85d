"""The outbox: the one way anything becomes an alert to send. Every producer (the engine's
recorder, a rule's test send, the engine's notices, the bot) calls `enqueue` in its own
transaction, which adds the events and one `pending` delivery per destination; the delivery
workers alone claim, send and record them (`alerts.db.queue`, `alerts.delivery`).

A commit that enqueued something rings the delivery doorbell: in this process at once
(`alerts.db.doorbell`), in the others through PostgreSQL's `NOTIFY`, sent with the commit.

Routing (which destinations a firing goes to) lives in `route`; the single-firing helpers
are its one-key case, and `alerts.db.routing` is the same rule for a batch of the engine's
rules in one query (a test compares the two)."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerts.db.bulk import Inserter, one_of, per_dialect
from alerts.db.doorbell import CHANNEL, ring_on_commit
from alerts.db.models import Delivery, Destination, Event, RuleDestination, User
from alerts.db.queue import PENDING

TELEGRAM = "telegram"

K = TypeVar("K", bound=Hashable)

_EVENTS = Event.metadata.tables["events"]
_DELIVERIES = Delivery.metadata.tables["deliveries"]
_DESTINATIONS = Destination.metadata.tables["destinations"]
_NAMED_TABLE = RuleDestination.metadata.tables["rule_destinations"]
_USERS = User.metadata.tables["users"]

# Built once for each database; every firing the engine records runs them (see `bulk`).
_N = _NAMED_TABLE.c
_NAMED = per_dialect(
    lambda dialect: select(_N.rule_id, _N.destination_id).where(one_of(_N.rule_id, "ids", dialect))
)
_D = _DESTINATIONS.c
_ENABLED = per_dialect(
    lambda dialect: select(_D.id, _D.user_id, _D.kind, _D.chat_id).where(
        _D.enabled, one_of(_D.id, "ids", dialect)
    )
)
_PRIVATE_CHATS = per_dialect(
    lambda dialect: (
        select(_USERS.c.id, _D.id, _D.kind, _D.chat_id)
        .join(_DESTINATIONS, _D.user_id == _USERS.c.id)
        .where(
            one_of(_USERS.c.id, "ids", dialect),
            _D.enabled,
            _D.kind == TELEGRAM,
            _D.chat_id == _USERS.c.telegram_user_id,
        )
    )
)
_INSERT_EVENTS = Inserter(
    _EVENTS,
    ["user_id", "rule_id", "rule_name", "kind", "symbol", "values", "after_gap", "test",
     "dedup_key", "fired_at"],
)  # fmt: skip
_INSERT_DELIVERIES = Inserter(
    _DELIVERIES,
    ["event_id", "destination_id", "status", "attempts", "next_attempt_at", "held", "created_at"],
)
_NOTIFY = text(f"NOTIFY {CHANNEL}")


@dataclass(frozen=True, slots=True)
class Target:
    """An enabled destination a firing goes to."""

    id: int
    kind: str
    chat_id: int | None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A firing to enqueue: the event's fields and where it goes."""

    user_id: int
    rule_id: int | None
    rule_name: str
    kind: str
    symbol: str | None
    values: dict[str, Any]
    destination_ids: Sequence[int]
    fired_at: datetime
    after_gap: bool = False
    dedup_key: str | None = None
    test: bool = False


@dataclass(frozen=True, slots=True)
class Enqueued:
    """An event just added, and its deliveries' ids (in the order of its destinations)."""

    event_id: int
    delivery_ids: list[int]


def enqueue(session: Session, events: Sequence[NewEvent]) -> list[Enqueued]:
    """Add events and one pending delivery per destination, due at once, in the caller's
    transaction (the caller commits): a statement per table however many. Returns what was
    added, in the order of `events`; the commit wakes the delivery workers."""
    if not events:
        return []
    rows = [
        {
            "user_id": e.user_id,
            "rule_id": e.rule_id,
            "rule_name": e.rule_name,
            "kind": e.kind,
            "symbol": e.symbol,
            "values": e.values,
            "after_gap": e.after_gap,
            "test": e.test,
            "dedup_key": e.dedup_key,
            "fired_at": e.fired_at,
        }
        for e in events
    ]
    conn = session.connection()
    event_ids = _INSERT_EVENTS(conn, rows)
    deliveries = [
        {
            "event_id": event_id,
            "destination_id": destination,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": e.fired_at,
            "held": False,
            "created_at": e.fired_at,
        }
        for event_id, e in zip(event_ids, events, strict=True)
        for destination in e.destination_ids
    ]
    ids = iter(_INSERT_DELIVERIES(conn, deliveries))
    added = [Enqueued(event_id, [next(ids) for _ in e.destination_ids]) for event_id, e in
             zip(event_ids, events, strict=True)]  # fmt: skip
    if deliveries:
        if conn.dialect.name == "postgresql":
            conn.execute(_NOTIFY)  # sent by PostgreSQL when (and if) this commits
        ring_on_commit(session)
    return added


def dialect(session: Session) -> str:
    """The session's database: "postgresql" or "sqlite"."""
    return session.get_bind().dialect.name


def rule_destinations(session: Session, rule_ids: Collection[int]) -> dict[int, list[int]]:
    """The destinations each rule names, in id order (a rule naming none is left out)."""
    named: dict[int, list[int]] = {}
    if rule_ids:
        statement = _NAMED[dialect(session)]
        for rule_id, destination_id in session.execute(statement, {"ids": sorted(rule_ids)}):
            named.setdefault(rule_id, []).append(destination_id)
    return {rule_id: sorted(ids) for rule_id, ids in named.items()}


def rule_destination_ids(session: Session, rule_id: int) -> list[int]:
    """The destinations a rule names, in id order (empty: the owner's own chat)."""
    return rule_destinations(session, [rule_id]).get(rule_id, [])


def route(
    session: Session, firings: Mapping[K, tuple[int, Sequence[int]]]
) -> dict[K, list[Target]]:
    """Enabled destinations for many firings at once, each given as (owner, named
    destinations): the named ones the owner has enabled, or else the owner's private
    Telegram chat; in id order. Two queries at most, whatever the number of firings."""
    named = sorted({d for _, ids in firings.values() for d in ids})
    default_owners = sorted({user for user, ids in firings.values() if not ids})
    enabled: dict[int, tuple[int, Target]] = {}
    if named:
        for d, user, kind, chat in session.execute(_ENABLED[dialect(session)], {"ids": named}):
            enabled[d] = (user, Target(d, kind, chat))
    private: dict[int, list[Target]] = {}
    if default_owners:
        statement = _PRIVATE_CHATS[dialect(session)]
        for user, d, kind, chat in session.execute(statement, {"ids": default_owners}):
            private.setdefault(user, []).append(Target(d, kind, chat))
    routes: dict[K, list[Target]] = {}
    for key, (user, ids) in firings.items():
        if ids:
            owned = {d: enabled[d][1] for d in ids if d in enabled and enabled[d][0] == user}
            routes[key] = [owned[d] for d in sorted(owned)]
        else:
            routes[key] = sorted(private.get(user, []), key=lambda t: t.id)
    return routes


def delivery_targets(session: Session, user_id: int, named: Sequence[int]) -> list[int]:
    """Enabled destinations for a firing: the named ones, or else the owner's private chat."""
    return [t.id for t in route(session, {0: (user_id, named)})[0]]


def record_event(
    session: Session,
    *,
    user_id: int,
    rule_id: int | None,
    rule_name: str,
    kind: str,
    symbol: str | None,
    values: dict[str, Any],
    destination_ids: Sequence[int],
    now: datetime,
    after_gap: bool = False,
    test: bool = False,
    dedup_key: str | None = None,
) -> tuple[Event, list[Delivery]]:
    """`enqueue` for one event, answered with its rows (the caller commits)."""
    new = NewEvent(
        user_id=user_id,
        rule_id=rule_id,
        rule_name=rule_name,
        kind=kind,
        symbol=symbol,
        values=values,
        destination_ids=destination_ids,
        fired_at=now,
        after_gap=after_gap,
        dedup_key=dedup_key,
        test=test,
    )
    [added] = enqueue(session, [new])
    event = session.get(Event, added.event_id)
    assert event is not None
    deliveries = [session.get(Delivery, i) for i in added.delivery_ids]
    return event, [d for d in deliveries if d is not None]
