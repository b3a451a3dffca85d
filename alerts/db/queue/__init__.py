"""The delivery queue in the database: claim due deliveries under a lease, record each attempt
and its outcome. On PostgreSQL claims take `FOR UPDATE SKIP LOCKED`, so any number of
workers share the work; on SQLite one worker runs. A claim whose worker died is taken over
when its lease ends. Deliveries come in through `alerts.db.outbox.enqueue` alone."""

from alerts.db.queue.claims import Job, claim, depth, leased_jobs, release, renew
from alerts.db.queue.outcomes import Attempt, Outcome, finish_many
from alerts.db.queue.statements import DEAD, FAILED, PENDING, SENDING, SENT

__all__ = [
    "DEAD",
    "FAILED",
    "PENDING",
    "SENDING",
    "SENT",
    "Attempt",
    "Job",
    "Outcome",
    "claim",
    "depth",
    "finish_many",
    "leased_jobs",
    "release",
    "renew",
]
