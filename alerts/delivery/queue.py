"""The delivery queue in the database: claim due deliveries under a lease, record each attempt
and its outcome. On PostgreSQL claims take `FOR UPDATE SKIP LOCKED`, so any number of
workers share the work; on SQLite one worker runs. A claim whose worker died is taken over
when its lease ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from alerts.db.models import Delivery, DeliveryAttempt, Destination, Event, Rule
from alerts.db.session import Database

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


def claim(db: Database, *, now: datetime, lease: timedelta, limit: int) -> list[Job]:
    """Take up to `limit` due deliveries (oldest first) and lease them until now + lease."""
    with db.writing() as session:
        due = (
            select(Delivery.id)
            .where(
                or_(
                    col(Delivery.status).in_((PENDING, FAILED)),
                    (col(Delivery.status) == SENDING) & (col(Delivery.lease_until) < now),
                ),
                col(Delivery.next_attempt_at) <= now,
            )
            .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
            .limit(limit)
        )
        if db.dialect == "postgresql":
            due = due.with_for_update(skip_locked=True)
        ids = [i for i in session.exec(due) if i is not None]
        if not ids:
            return []
        session.execute(
            update(Delivery)
            .where(col(Delivery.id).in_(ids))
            .values(status=SENDING, lease_until=now + lease, attempts=Delivery.attempts + 1)
        )
        rows = session.exec(
            select(Delivery, Event, Destination, Rule.message)
            .join(Event, col(Event.id) == col(Delivery.event_id))
            .outerjoin(Destination, col(Destination.id) == col(Delivery.destination_id))
            .outerjoin(Rule, col(Rule.id) == col(Event.rule_id))
            .where(col(Delivery.id).in_(ids))
            .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
        ).all()
        jobs = [
            Job(
                delivery_id=d.id or 0,
                attempts=d.attempts,
                created_at=d.created_at,
                destination_id=d.destination_id,
                destination_kind=dest.kind if dest else None,
                destination_enabled=bool(dest and dest.enabled),
                disabled_reason=dest.disabled_reason if dest else None,
                chat_id=dest.chat_id if dest else None,
                url_sealed=dest.url_sealed if dest else None,
                event_id=e.id or 0,
                event_kind=e.kind,
                rule_id=e.rule_id,
                rule_name=e.rule_name,
                template=message,
                values=dict(e.values),
                test=e.test,
                after_gap=e.after_gap,
                fired_at=e.fired_at,
            )
            for d, e, dest, message in rows
        ]
        session.commit()
        return jobs


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
    """Record attempts and the deliveries' (and destinations') new states, in one transaction."""
    with db.writing() as session:
        for a in attempts:
            _finish(session, a)
        session.commit()


def _finish(session: Session, attempt: Attempt) -> None:
    job, outcome, started = attempt.job, attempt.outcome, attempt.started
    session.add(
        DeliveryAttempt(
            delivery_id=job.delivery_id,
            started_at=started,
            outcome=outcome.status,
            error=outcome.error,
            duration_ms=attempt.duration_ms,
        )
    )
    values: dict[str, Any] = {"status": outcome.status, "lease_until": None}
    if outcome.status == SENT:
        values["sent_at"] = started + timedelta(milliseconds=attempt.duration_ms)
        values["last_error"] = None
    else:
        values["last_error"] = outcome.error
    if outcome.retry_at is not None:
        values["next_attempt_at"] = outcome.retry_at
    session.execute(update(Delivery).where(col(Delivery.id) == job.delivery_id).values(**values))
    if job.destination_id is not None and (outcome.disable_reason or outcome.new_chat_id):
        destination = session.get(Destination, job.destination_id)
        if destination is not None:
            if outcome.disable_reason:
                destination.enabled = False
                destination.disabled_reason = outcome.disable_reason[:300]
            if outcome.new_chat_id:
                destination.chat_id = outcome.new_chat_id
            destination.updated_at = started
            session.add(destination)
