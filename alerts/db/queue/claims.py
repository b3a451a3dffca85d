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
from alerts.domain.quiet_hours import quiet_until

MUTE, QUIET = "mute", "quiet"  # why a delivery was held (`Job.hold_reason`)


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
    held: bool = False  # held by a mute or quiet hours that ended: one summary
    muted_until: datetime | None = None  # the owner's mute, if any
    symbol: str | None = None
    secret_sealed: str | None = None  # a webhook's signing secret, encrypted
    body: Any = None  # a webhook's body template
    urgent: bool = False  # the rule's deliveries go through quiet hours
    timezone: str = "UTC"  # the owner's, and their quiet hours ("HH:MM") in it
    quiet_start: str | None = None
    quiet_end: str | None = None
    hold_reason: str | None = None  # why it was held: "mute" or "quiet"
    fallback: bool = False  # to a fallback destination, every primary delivery dead


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
    owner is muted, or in quiet hours, go back, held, instead (see `_holds`)."""
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
            symbol=r[20],
            secret_sealed=r[21],
            body=r[22],
            urgent=bool(r[23]),
            timezone=r[24] or "UTC",
            quiet_start=r[25],
            quiet_end=r[26],
            hold_reason=r[27],
            fallback=bool(r[28]),
        )
        for r in rows
    ]
    holds = _holds(jobs, now)
    if holds:
        session.execute(HOLD, holds)
        held = {h["did"] for h in holds}
        jobs = [j for j in jobs if j.delivery_id not in held]
    return jobs


def _holds(jobs: Sequence[Job], now: datetime) -> list[dict[str, Any]]:
    """The hold stage: each job whose owner is muted, or in quiet hours (unless its rule is
    urgent or it is a test message), with when that ends (the later of the two when both
    apply) and why: HOLD's parameters."""
    holds: list[dict[str, Any]] = []
    quiet: dict[tuple[str, str, str], datetime | None] = {}  # one zone lookup per setting
    for job in jobs:
        until, reason = None, ""
        if job.muted_until is not None and job.muted_until > now:
            until, reason = job.muted_until, MUTE
        if job.quiet_start and job.quiet_end and not (job.urgent or job.test):
            key = (job.timezone, job.quiet_start, job.quiet_end)
            if key not in quiet:
                quiet[key] = quiet_until(now, timezone=key[0], start=key[1], end=key[2])
            ends = quiet[key]
            if ends is not None and (until is None or ends > until):
                until, reason = ends, QUIET
        if until is not None:
            holds.append({"did": job.delivery_id, "until": until, "reason": reason})
    return holds


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
