"""Recording each attempt's outcome: the attempt row, the delivery's new state, the
destination's, when the attempt showed it disabled or moved, and a firing's fallback
deliveries when its last primary delivery ended dead (`alerts.db.fallbacks`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlmodel import Session

from alerts.db.fallbacks import fall_back
from alerts.db.models import Destination, TelegramChat
from alerts.db.queue.claims import Job
from alerts.db.queue.statements import ATTEMPTS, DEAD, DELIVERIES, SENT
from alerts.db.session import Database


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
            insert(ATTEMPTS),
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
                update(DELIVERIES)
                .where(DELIVERIES.c.id == bindparam("did"))
                .values({c: bindparam(f"new_{c}") for c in columns}),
                rows,
            )
        for a in attempts:
            if a.job.destination_id is not None and (
                a.outcome.disable_reason or a.outcome.new_chat_id
            ):
                _change_destination(session, a)
        dead = [
            (a.job.event_id, a.job.rule_id)
            for a in attempts
            if a.outcome.status == DEAD and not a.job.fallback
        ]
        if dead:
            fall_back(session, dead, max(a.started for a in attempts))
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
