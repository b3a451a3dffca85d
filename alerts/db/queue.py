"""The delivery queue in the database: claim due deliveries under a lease, record each attempt
and its outcome. On PostgreSQL claims take `FOR UPDATE SKIP LOCKED`, so any number of
workers share the work; on SQLite one worker runs. A claim whose worker died is taken over
when its lease ends. The engine, when a worker runs in its process, adds the deliveries it
records already leased to that worker, in the same transaction, and hands them over."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, bindparam, func, insert, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session

from alerts.db.models import (
    Delivery,
    DeliveryAttempt,
    Destination,
    Event,
    Rule,
    TelegramChat,
    User,
)
from alerts.db.session import Database
from alerts.db.types import UTCDateTime

PENDING, SENDING, SENT, FAILED, DEAD = "pending", "sending", "sent", "failed", "dead"


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed delivery with everything needed to render and send it."""

    delivery_id: int
    attempts: int
    created_at: datetime
    destination_id: int | None
    destination_kind: str | None
    destination_enabled: bool
    disabled_reason: str | None
    chat_id: int | None
    url_sealed: str | None
    event_id: int
    event_kind: str
    rule_id: int | None
    rule_name: str
    template: str | None
    values: dict[str, Any]
    test: bool
    after_gap: bool
    fired_at: datetime
    held: bool = False  # held by a mute that has ended: it goes out in one summary
    muted_until: datetime | None = None  # the owner's mute, if any


_DELIVERIES = Delivery.metadata.tables["deliveries"]
_ATTEMPTS = DeliveryAttempt.metadata.tables["delivery_attempts"]
_EVENTS = Event.metadata.tables["events"]
_DESTINATIONS = Destination.metadata.tables["destinations"]
_RULES = Rule.metadata.tables["rules"]
_USERS = User.metadata.tables["users"]
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
_NOW = bindparam("now", type_=UTCDateTime)

# The claim's statements are built once, with parameters: building them per claim cost as
# much as running them (the worker of the engine's process claims every few milliseconds).


# Due at :now, oldest first, but not those in :held (the claiming worker's own: a lease that
# ran out while the worker still has the delivery in hand is not claimed again by it). On
# SQLite the row lock is left out of the SQL.
_DUE = (
    sa_select(_DELIVERIES.c.id)
    .where(
        or_(
            _DELIVERIES.c.status.in_((PENDING, FAILED)),
            (_DELIVERIES.c.status == SENDING) & (_DELIVERIES.c.lease_until < _NOW),
        ),
        _DELIVERIES.c.next_attempt_at <= _NOW,
        _DELIVERIES.c.id.not_in(bindparam("held", expanding=True)),
    )
    .order_by(_DELIVERIES.c.next_attempt_at, _DELIVERIES.c.id)
    .with_for_update(skip_locked=True)
)
_LEASE = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id.in_(_IDS))
    .values(status=SENDING, lease_until=bindparam("until"), attempts=_DELIVERIES.c.attempts + 1)
)
# A delivery whose owner is muted goes back, untried, until the mute ends.
_HOLD = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("did"))
    .values(
        status=PENDING,
        held=True,
        next_attempt_at=bindparam("until"),
        lease_until=None,
        attempts=_DELIVERIES.c.attempts - 1,
    )
)
_RENEW = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id.in_(_IDS), _DELIVERIES.c.status == SENDING)
    .values(lease_until=bindparam("until"))
)
_RELEASE = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id.in_(_IDS), _DELIVERIES.c.status == SENDING)
    .values(status=PENDING, lease_until=None, attempts=_DELIVERIES.c.attempts - 1)
)
# What a job needs, read as plain columns: building ORM objects for them cost more than the
# rest of a small claim.
_JOBS = (
    sa_select(
        _DELIVERIES.c.id,
        _DELIVERIES.c.attempts,
        _DELIVERIES.c.created_at,
        _DELIVERIES.c.destination_id,
        _DESTINATIONS.c.kind,
        _DESTINATIONS.c.enabled,
        _DESTINATIONS.c.disabled_reason,
        _DESTINATIONS.c.chat_id,
        _DESTINATIONS.c.url_sealed,
        _EVENTS.c.id,
        _EVENTS.c.kind,
        _EVENTS.c.rule_id,
        _EVENTS.c.rule_name,
        _RULES.c.message,
        _EVENTS.c["values"],
        _EVENTS.c.test,
        _EVENTS.c.after_gap,
        _EVENTS.c.fired_at,
        _DELIVERIES.c.held,
        _USERS.c.muted_until,
    )
    .select_from(_DELIVERIES)
    .join(_EVENTS, _EVENTS.c.id == _DELIVERIES.c.event_id)
    .join(_USERS, _USERS.c.id == _EVENTS.c.user_id)
    .outerjoin(_DESTINATIONS, _DESTINATIONS.c.id == _DELIVERIES.c.destination_id)
    .outerjoin(_RULES, _RULES.c.id == _EVENTS.c.rule_id)
    .where(_DELIVERIES.c.id.in_(_IDS))
    .order_by(_DELIVERIES.c.next_attempt_at, _DELIVERIES.c.id)
)


def claim(
    db: Database,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    held: Collection[int] = (),
) -> list[Job]:
    """Take up to `limit` due deliveries (oldest first), none of those in `held` (the
    caller's own), and lease them until now + lease."""
    with db.writing() as session:
        params = {"now": now, "held": sorted(held)}
        claimed = list(session.execute(_DUE.limit(limit), params).scalars())
        if not claimed:
            return []
        session.execute(_LEASE, {"ids": claimed, "until": now + lease})
        jobs = leased_jobs(session, claimed, now=now)
        session.commit()
        return jobs


def leased_jobs(session: Session, ids: Sequence[int], *, now: datetime) -> list[Job]:
    """The jobs of deliveries leased in the caller's transaction (by `claim`, or by the engine
    as it adds them for the worker of its process); those whose owner is muted go back,
    held, instead."""
    if not ids:
        return []
    rows = session.execute(_JOBS, {"ids": ids}).all()
    jobs = [
        Job(
            delivery_id=r[0],
            attempts=r[1],
            created_at=r[2],
            destination_id=r[3],
            destination_kind=r[4],
            destination_enabled=bool(r[5]),
            disabled_reason=r[6],
            chat_id=r[7],
            url_sealed=r[8],
            event_id=r[9],
            event_kind=r[10],
            rule_id=r[11],
            rule_name=r[12],
            template=r[13],
            values=dict(r[14]),
            test=r[15],
            after_gap=r[16],
            fired_at=r[17],
            held=bool(r[18]),
            muted_until=r[19],
        )
        for r in rows
    ]
    muted = [j for j in jobs if j.muted_until is not None and j.muted_until > now]
    if muted:
        session.execute(_HOLD, [{"did": j.delivery_id, "until": j.muted_until} for j in muted])
        held = {j.delivery_id for j in muted}
        jobs = [j for j in jobs if j.delivery_id not in held]
    return jobs


def renew(db: Database, ids: Collection[int], until: datetime) -> None:
    """Extend the lease of deliveries still in a worker's hands (a chat waiting out a long
    `retry_after`, say), so that no other worker takes them over meanwhile."""
    if ids:
        with db.writing() as session:
            session.execute(_RENEW, {"ids": sorted(ids), "until": until})
            session.commit()


def release(db: Database, jobs: Sequence[Job]) -> None:
    """Give back leased deliveries untried (a worker stopping before it sent them): due at
    once, for the next worker, with their attempt not counted."""
    if jobs:
        with db.writing() as session:
            session.execute(_RELEASE, {"ids": [j.delivery_id for j in jobs]})
            session.commit()


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended and what to do about it."""

    status: str  # sent, failed (retry at `retry_at`) or dead
    error: str | None = None
    retry_at: datetime | None = None
    disable_reason: str | None = None
    new_chat_id: int | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished attempt, ready to be recorded."""

    job: Job
    outcome: Outcome
    started: datetime
    duration_ms: int


def finish_many(db: Database, attempts: list[Attempt]) -> None:
    """Record attempts and the deliveries' (and destinations') new states, in one transaction:
    a statement per kind of change, each run for all the rows it concerns."""
    with db.writing() as session:
        session.execute(
            insert(_ATTEMPTS),
            [
                {
                    "delivery_id": a.job.delivery_id,
                    "started_at": a.started,
                    "outcome": a.outcome.status,
                    "error": a.outcome.error,
                    "duration_ms": a.duration_ms,
                }
                for a in attempts
            ],
        )
        changes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for a in attempts:
            values = _new_state(a)
            row = {f"new_{c}": v for c, v in values.items()}  # bound names may not be columns
            changes.setdefault(tuple(values), []).append({"did": a.job.delivery_id, **row})
        for columns, rows in changes.items():
            session.execute(
                update(_DELIVERIES)
                .where(_DELIVERIES.c.id == bindparam("did"))
                .values({c: bindparam(f"new_{c}") for c in columns}),
                rows,
            )
        for a in attempts:
            if a.job.destination_id is not None and (
                a.outcome.disable_reason or a.outcome.new_chat_id
            ):
                _change_destination(session, a)
        session.commit()


def _new_state(attempt: Attempt) -> dict[str, Any]:
    outcome, started = attempt.outcome, attempt.started
    values: dict[str, Any] = {"status": outcome.status, "lease_until": None}
    if outcome.status == SENT:
        values["sent_at"] = started + timedelta(milliseconds=attempt.duration_ms)
        values["last_error"] = None
    else:
        values["last_error"] = outcome.error
    if outcome.retry_at is not None:
        values["next_attempt_at"] = outcome.retry_at
    return values


def _change_destination(session: Session, attempt: Attempt) -> None:
    outcome = attempt.outcome
    destination = session.get(Destination, attempt.job.destination_id)
    if destination is None:
        return
    if outcome.disable_reason:
        destination.enabled = False
        destination.disabled_reason = outcome.disable_reason[:300]
    if outcome.new_chat_id:
        old, destination.chat_id = destination.chat_id, outcome.new_chat_id
        # The proof that the chat is its owner's follows the group to its new id.
        proof = session.get(TelegramChat, (destination.user_id, old))
        if (
            proof is not None
            and session.get(TelegramChat, (destination.user_id, outcome.new_chat_id)) is None
        ):
            session.add(
                TelegramChat(
                    user_id=destination.user_id,
                    chat_id=outcome.new_chat_id,
                    proof=proof.proof,
                    proven_at=attempt.started,
                )
            )
    destination.updated_at = attempt.started
    session.add(destination)


def depth(db: Database) -> int:
    """Deliveries not yet sent nor given up (pending, being sent, or waiting for a retry)."""
    d = _DELIVERIES.c
    count = sa_select(func.count()).where(d.status.in_((PENDING, SENDING, FAILED)))
    with db.session() as session:
        return int(session.execute(count).scalar_one())
