"""The queue's SQLAlchemy Core statements and the statuses they move deliveries between.

They are built once, with parameters: building them per claim cost as much as running them
(the worker of the engine's process claims every few milliseconds)."""

from __future__ import annotations

from sqlalchemy import BindParameter, Select, Update, bindparam, exists, or_, update
from sqlalchemy import select as sa_select

from alerts.db.models import Delivery, DeliveryAttempt, Destination, Event, Rule, User
from alerts.db.types import UTCDateTime

PENDING, SENDING, SENT, FAILED, DEAD = "pending", "sending", "sent", "failed", "dead"

DELIVERIES = Delivery.metadata.tables["deliveries"]
ATTEMPTS = DeliveryAttempt.metadata.tables["delivery_attempts"]
EVENTS = Event.metadata.tables["events"]
DESTINATIONS = Destination.metadata.tables["destinations"]
RULES = Rule.metadata.tables["rules"]
USERS = User.metadata.tables["users"]
IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
NOW = bindparam("now", type_=UTCDateTime)

# Due at :now, oldest first (a lease that ran out counts as due: its worker died, or could
# not renew it). On SQLite the row lock is left out of the SQL.
DUE = (
    sa_select(DELIVERIES.c.id)
    .where(
        or_(
            DELIVERIES.c.status.in_((PENDING, FAILED)),
            (DELIVERIES.c.status == SENDING) & (DELIVERIES.c.lease_until < NOW),
        ),
        DELIVERIES.c.next_attempt_at <= NOW,
    )
    .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
    .with_for_update(skip_locked=True)
)
# The same but Telegram's, for a worker that is not its bot's elected sender.
DUE_NOT_TELEGRAM = DUE.where(
    ~exists().where(
        DESTINATIONS.c.id == DELIVERIES.c.destination_id, DESTINATIONS.c.kind == "telegram"
    )
)


def _claiming(due: Select[tuple[int]]) -> Update:
    """Lease up to :limit of `due` until :until, their attempt counted, in one statement: on
    SQLite a write statement holds the write lock from its start, so two processes never
    take the same row; on PostgreSQL the rows are locked (`SKIP LOCKED`) as they are read."""
    return (
        update(DELIVERIES)
        .where(DELIVERIES.c.id.in_(due.limit(bindparam("limit"))))
        .values(status=SENDING, lease_until=bindparam("until"), attempts=DELIVERIES.c.attempts + 1)
        .returning(DELIVERIES.c.id)
    )


CLAIM = _claiming(DUE)
CLAIM_NOT_TELEGRAM = _claiming(DUE_NOT_TELEGRAM)
# A delivery whose owner is muted, or in quiet hours, goes back, untried, until that ends;
# :reason ("mute" or "quiet") picks the summary's title.
HOLD = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id == bindparam("did"))
    .values(
        status=PENDING,
        held=True,
        hold_reason=bindparam("reason"),
        next_attempt_at=bindparam("until"),
        lease_until=None,
        attempts=DELIVERIES.c.attempts - 1,
    )
)
RENEW = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id.in_(IDS), DELIVERIES.c.status == SENDING)
    .values(lease_until=bindparam("until"))
)
RELEASE = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id.in_(IDS), DELIVERIES.c.status == SENDING)
    .values(status=PENDING, lease_until=None, attempts=DELIVERIES.c.attempts - 1)
)
# What a job needs, read as plain columns: building ORM objects for them cost more than the
# rest of a small claim.
JOBS = (
    sa_select(
        DELIVERIES.c.id,
        DELIVERIES.c.attempts,
        DELIVERIES.c.created_at,
        DELIVERIES.c.destination_id,
        DESTINATIONS.c.kind,
        DESTINATIONS.c.enabled,
        DESTINATIONS.c.disabled_reason,
        DESTINATIONS.c.chat_id,
        DESTINATIONS.c.url_sealed,
        EVENTS.c.id,
        EVENTS.c.kind,
        EVENTS.c.rule_id,
        EVENTS.c.rule_name,
        RULES.c.message,
        EVENTS.c["values"],
        EVENTS.c.test,
        EVENTS.c.after_gap,
        EVENTS.c.fired_at,
        DELIVERIES.c.held,
        USERS.c.muted_until,
        EVENTS.c.symbol,
        DESTINATIONS.c.secret_sealed,
        DESTINATIONS.c.body,
        RULES.c.urgent,
        USERS.c.timezone,
        USERS.c.quiet_start,
        USERS.c.quiet_end,
        DELIVERIES.c.hold_reason,
        DELIVERIES.c.fallback,
    )
    .select_from(DELIVERIES)
    .join(EVENTS, EVENTS.c.id == DELIVERIES.c.event_id)
    .join(USERS, USERS.c.id == EVENTS.c.user_id)
    .outerjoin(DESTINATIONS, DESTINATIONS.c.id == DELIVERIES.c.destination_id)
    .outerjoin(RULES, RULES.c.id == EVENTS.c.rule_id)
    .where(DELIVERIES.c.id.in_(IDS))
    .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
)
