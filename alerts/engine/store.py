"""What the engine reads from the database, and its writes other than recording hits (those
are in `alerts.engine.recorder`). Synchronous; the runner calls it from a worker thread."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import delete, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from alerts.db.models import Account, EngineState, Rule, RuleChange, SymbolStatus
from alerts.db.models import Ticker as TickerRow
from alerts.db.outbox import delivery_targets, record_event
from alerts.db.recording import ACCOUNT_STATE
from alerts.db.session import Database
from alerts.engine.armed import Armed, arm, arm_fields

logger = logging.getLogger("alerts.engine")

_RULE_COLUMNS = (
    col(Rule.id),
    col(Rule.user_id),
    col(Rule.kind),
    col(Rule.params),
    col(Rule.trigger),
    col(Rule.cooldown_seconds),
    col(Rule.expires_at),
    col(Rule.snoozed_until),
    col(Rule.last_fired_at),
    col(Rule.state),
)


def _armed(rows: Any) -> Iterator[Armed]:
    for row in rows:
        try:
            yield arm(row._mapping)
        except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
            logger.warning("rule %s skipped: stored fields not understood (%s)", row.id, exc)


_LOAD = (
    "SELECT id, user_id, kind, params, trigger, cooldown_seconds, expires_at, snoozed_until,"
    " last_fired_at, state FROM rules WHERE enabled"
)


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def load_rules(db: Database, batch: int = 20_000) -> Iterator[Armed]:
    """Every enabled rule, streamed through the driver's own cursor: at a million rules the
    ORM's row processing would be most of the start-up time."""
    decode = msgspec.json.decode
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(_LOAD)
        while rows := cursor.fetchmany(batch):
            for rid, uid, kind, params, trigger, cooldown, expires, snoozed, fired, state in rows:
                try:
                    spec = decode(params) if isinstance(params, str | bytes) else params
                    if isinstance(state, str | bytes):
                        state = decode(state)
                    yield arm_fields(
                        rid,
                        uid,
                        kind,
                        spec,
                        trigger,
                        cooldown,
                        _when(expires),
                        _when(snoozed),
                        _when(fired),
                        state,
                    )
                except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
                    logger.warning("rule %s skipped: stored fields not understood (%s)", rid, exc)
        cursor.close()
    finally:
        raw.close()


def latest_change(db: Database) -> int:
    """The id of the newest rule change (0 if none)."""
    with db.engine.connect() as conn:
        newest = sa_select(func.coalesce(func.max(col(RuleChange.id)), 0))
        return int(conn.execute(newest).scalar_one() or 0)


def changes_since(db: Database, after: int) -> tuple[int, dict[int, Armed | None]]:
    """Rules changed after change `after`: their current armed form, or None when they are
    deleted or disabled; and the newest change id seen."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa_select(col(RuleChange.id), col(RuleChange.rule_id))
            .where(col(RuleChange.id) > after)
            .order_by(col(RuleChange.id))
            .limit(10_000)
        ).all()
        if not rows:
            return after, {}
        ids = sorted({r.rule_id for r in rows})
        current: dict[int, Armed | None] = dict.fromkeys(ids)
        fresh = conn.execute(
            sa_select(*_RULE_COLUMNS).where(col(Rule.id).in_(ids), col(Rule.enabled))
        )
        for rule in _armed(fresh):
            current[rule.id] = rule
        return int(rows[-1].id), current


def load_prices(db: Database) -> dict[tuple[str, str], Decimal]:
    """The last persisted price per symbol and source."""
    prices: dict[tuple[str, str], Decimal] = {}
    with db.session() as session:
        for row in session.exec(select(TickerRow)):
            for source in ("last", "bid", "ask"):
                value = getattr(row, source)
                if value is not None:
                    prices[(row.symbol, source)] = value
    return prices


def load_accounts(db: Database) -> dict[int, dict[str, Any]]:
    """Each account's persisted state (see `AccountRules.snapshot`); an account that only
    has balances from before account states were kept gets those."""
    states: dict[int, dict[str, Any]] = {}
    with db.session() as session:
        rows = session.exec(
            select(EngineState).where(
                col(EngineState.key).like("balances:%")
                | col(EngineState.key).like(f"{ACCOUNT_STATE}%")
            )
        )
        for row in sorted(rows, key=lambda r: r.key.startswith(ACCOUNT_STATE)):
            prefix, _, account = row.key.partition(":")
            if not account.isdigit():
                continue
            if prefix == "balances":
                states[int(account)] = {"balances": dict(row.value)}
            else:
                states[int(account)] = dict(row.value)  # the newer form wins
    return states


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What the engine needs to open an account's private connection."""

    id: int
    user_id: int
    status: str
    token_sealed: str
    updated_at: datetime


def accounts(db: Database, ids: set[int]) -> dict[int, AccountInfo]:
    """The named accounts' connection details."""
    if not ids:
        return {}
    with db.session() as session:
        rows = session.exec(select(Account).where(col(Account.id).in_(sorted(ids))))
        return {
            row.id: AccountInfo(row.id, row.user_id, row.status, row.token_sealed, row.updated_at)
            for row in rows
            if row.id is not None
        }


def reject_account(db: Database, account_id: int, reason: str, now: datetime) -> bool:
    """Mark an account's token refused and tell its owner, once; False if already marked."""
    with db.writing() as session:
        row = session.get(Account, account_id)
        if row is None or row.status == "rejected":
            return False
        row.status, row.status_reason, row.updated_at = "rejected", reason[:300], now
        session.add(row)
        targets = delivery_targets(session, row.user_id, [])
        record_event(
            session,
            user_id=row.user_id,
            rule_id=None,
            rule_name=f"account {row.name}",
            kind="account",
            symbol=None,
            values={"account": row.name, "status": "rejected", "reason": reason[:300]},
            destination_ids=targets,
            now=now,
        )
        session.commit()
        return True


def prune_changes(db: Database, before: datetime) -> None:
    """Forget rule changes older than `before` (every engine has long seen them)."""
    with db.session() as session:
        session.execute(delete(RuleChange).where(col(RuleChange.changed_at) < before))
        session.commit()


SYMBOL_REFUSED = "symbol_refused"


def report_symbol(db: Database, symbol: str, status: str | None, now: datetime) -> int:
    """Store a symbol's status (None: it streams again, so clear it). The first time a symbol
    gets a status, each user with an enabled rule on it is told, once, in their own chat;
    returns how many were told."""
    with db.writing() as session:
        row = session.get(SymbolStatus, symbol)
        if status is None:
            if row is not None:
                session.delete(row)
                session.commit()
                logger.info("%s streams again; its status is cleared", symbol)
            return 0
        if row is not None:
            if row.status != status:
                row.status = status
                session.add(row)
                session.commit()
            return 0
        session.add(SymbolStatus(symbol=symbol, status=status, since=now))
        told = tell_followers(
            session,
            symbol,
            kind=SYMBOL_REFUSED,
            rule_name=f"{symbol} on the exchange",
            values={"symbol": symbol, "status": status},
            now=now,
        )
        session.commit()
    logger.warning("%s: %s; %d user(s) told", symbol, status, told)
    return told


def tell_followers(
    session: Session,
    symbol: str,
    *,
    kind: str,
    rule_name: str,
    values: dict[str, str],
    now: datetime,
) -> int:
    """An event about `symbol` for each user with an enabled rule on it, to their own chat
    (the caller commits); how many users."""
    users = session.exec(
        select(Rule.user_id).where(Rule.symbol == symbol, col(Rule.enabled)).distinct()
    ).all()
    for user_id in users:
        record_event(
            session,
            user_id=user_id,
            rule_id=None,
            rule_name=rule_name,
            kind=kind,
            symbol=symbol,
            values=values,
            destination_ids=delivery_targets(session, user_id, []),
            now=now,
        )
    return len(users)
