"""Bounded history: events (with their deliveries and attempts, by cascade) older than the
retention are deleted a small batch at a time, each batch its own short transaction, so that
recording never waits long behind pruning. On PostgreSQL a batch is taken only by the worker
that gets the pruning lock for it (an advisory lock held for the transaction): two workers
never delete the same rows at once, and a worker that dies holds nothing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, delete, select, text

from alerts.db.models import Event
from alerts.db.session import Database

# Any fixed 64-bit number no other application on the database uses.
_LOCK_KEY = 0x78526F636B6570  # "xRocketp"
_LOCK = text("SELECT pg_try_advisory_xact_lock(:k)")

_EVENTS = Event.metadata.tables["events"]
_OLDEST = (
    select(_EVENTS.c.id)
    .where(_EVENTS.c.fired_at < bindparam("before"))
    .order_by(_EVENTS.c.fired_at)
    .limit(bindparam("batch"))
)
_DELETE = delete(_EVENTS).where(_EVENTS.c.id.in_(bindparam("ids", expanding=True)))


def prune(db: Database, before: datetime, batch: int) -> int:
    """Delete up to `batch` of the oldest events fired before `before`, with their
    deliveries; how many were deleted (0 also when another worker is pruning)."""
    with db.writing() as session:
        if db.dialect == "postgresql" and not session.execute(_LOCK, {"k": _LOCK_KEY}).scalar():
            return 0
        ids = list(session.execute(_OLDEST, {"before": before, "batch": batch}).scalars())
        if ids:
            session.execute(_DELETE, {"ids": ids})
        session.commit()
        return len(ids)
