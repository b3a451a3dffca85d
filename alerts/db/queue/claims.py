"""Claiming due deliveries under a lease, renewing the lease, and giving them back."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session

from alerts.db.queue.statements import (
    CLAIM,
    CLAIM_NOT_TELEGRAM,
    DELIVERIES,
    FAILED,
    HOLD,
    JOBS,
    PENDING,
    RELEASE,
    RENEW,
    SENDING,
)
from alerts.db.session import Database


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


def claim(
    db: Database,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    telegram: bool = True,
) -> list[Job]:
    """Take up to `limit` due deliveries (oldest first), not Telegram's unless `telegram`,
    and lease them until now + lease."""
    statement = CLAIM if telegram else CLAIM_NOT_TELEGRAM
    params = {"now": now, "limit": limit, "until": now + lease}
    with db.writing() as session:
        claimed = list(session.execute(statement, params).scalars())
        if not claimed:
            session.rollback()
            return []
        jobs = leased_jobs(session, claimed, now=now)
        session.commit()
        return jobs


def leased_jobs(session: Session, ids: Sequence[int], *, now: datetime) -> list[Job]:
    """The jobs of deliveries leased in the caller's transaction (by `claim`); those whose
    owner is muted go back, held, instead."""
    if not ids:
        return []
    rows = session.execute(JOBS, {"ids": ids}).all()
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
        session.execute(HOLD, [{"did": j.delivery_id, "until": j.muted_until} for j in muted])
        held = {j.delivery_id for j in muted}
        jobs = [j for j in jobs if j.delivery_id not in held]
    return jobs


def renew(db: Database, ids: Collection[int], until: datetime) -> None:
    """Extend the lease of deliveries still in a worker's hands (a chat waiting out a long
    `retry_after`, say), so that no other worker takes them over meanwhile."""
    if ids:
        with db.writing() as session:
            session.execute(RENEW, {"ids": sorted(ids), "until": until})
            session.commit()


def release(db: Database, jobs: Sequence[Job]) -> None:
    """Give back leased deliveries untried (a worker stopping before it sent them): due at
    once, for the next worker, with their attempt not counted."""
    if jobs:
        with db.writing() as session:
            session.execute(RELEASE, {"ids": [j.delivery_id for j in jobs]})
            session.commit()


def depth(db: Database) -> int:
    """Deliveries not yet sent nor given up (pending, being sent, or waiting for a retry)."""
    d = DELIVERIES.c
    count = sa_select(func.count()).where(d.status.in_((PENDING, SENDING, FAILED)))
    with db.session() as session:
        return int(session.execute(count).scalar_one())
