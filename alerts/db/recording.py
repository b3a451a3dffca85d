"""The recorder's writes: a batch of hits (events, deliveries, rule state) with the prices and
balances they were computed from, atomically, in a fixed handful of statements whatever the
batch's size. The engine's loop around them is `alerts.engine.recorder`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from alerts.db.driver import Cursor, marks
from alerts.db.models import EngineState, Rule, User
from alerts.db.models import Ticker as TickerRow
from alerts.db.outbox import NewEvent, record_events, route, rule_destinations
from alerts.db.queue import Job
from alerts.db.session import Database
from alerts.domain.events import Ticker, utc
from alerts.domain.hits import Hit

ACCOUNT_STATE = "account:"  # engine_state key prefix of an account's state

_TICKERS = TickerRow.metadata.tables["tickers"]
_STATE = EngineState.metadata.tables["engine_state"]
_RULES = Rule.metadata.tables["rules"]
_USERS = User.metadata.tables["users"]

# SQL on the driver (see alerts.db.driver): this write is the one an alert waits for.
_RULE_ROWS = (
    "SELECT r.id, r.user_id, r.name, r.kind, r.message, u.muted_until FROM rules r"
    " JOIN users u ON u.id = r.user_id WHERE r.enabled AND r.id IN ({})"
)
_SEEN = "SELECT rule_id, dedup_key FROM events WHERE rule_id IN ({}) AND dedup_key IN ({})"
_FIRED = "UPDATE rules SET fire_count = fire_count + 1, last_fired_at = ? WHERE id = ?"
_DISABLED = "UPDATE rules SET enabled = FALSE, updated_at = ? WHERE id = ?"
_TICKER_COLUMNS = (
    "symbol", "last", "bid", "ask", "change_percent", "exchange_time", "updated_at"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _RuleRow:
    id: int
    user_id: int
    name: str
    kind: str
    message: str | None
    muted_until: datetime | None


def _fresh(cursor: Cursor, hits: list[Hit]) -> list[tuple[Hit, _RuleRow]]:
    """The hits to record, each with its rule's row: not those of rules deleted or paused
    since evaluation, nor occurrences already recorded (e.g. before a restart)."""
    ids = sorted({h.rule_id for h in hits})
    muted = cursor.from_driver(_USERS.c.muted_until)
    rules = {
        rule_id: _RuleRow(rule_id, user_id, name, kind, message, muted(until))
        for rule_id, user_id, name, kind, message, until in cursor.rows(
            _RULE_ROWS.format(marks(len(ids))), ids
        )
    }
    keyed = [(h.rule_id, h.dedup_key) for h in hits if h.dedup_key is not None]
    seen: set[tuple[int, str]] = set()
    if keyed:
        rule_ids, keys = sorted({r for r, _ in keyed}), sorted({k for _, k in keyed})
        sql = _SEEN.format(marks(len(rule_ids)), marks(len(keys)))
        seen = {(r, k) for r, k in cursor.rows(sql, [*rule_ids, *keys])}
    fresh: list[tuple[Hit, _RuleRow]] = []
    disabled: set[int] = set()
    for hit in hits:
        rule = rules.get(hit.rule_id)
        if rule is None or hit.rule_id in disabled:
            continue
        if hit.dedup_key is not None:
            if (hit.rule_id, hit.dedup_key) in seen:
                continue
            seen.add((hit.rule_id, hit.dedup_key))
        if hit.once:
            disabled.add(hit.rule_id)  # recorded once; a second hit in the batch is too late
        fresh.append((hit, rule))
    return fresh


def _record_hits(
    cursor: Cursor, hits: list[Hit], now: datetime, lease_until: datetime | None
) -> list[Job]:
    """Events, deliveries and rule state for a batch of hits, in a fixed handful of
    statements; returns the new deliveries' jobs (see `record_events`)."""
    fresh = _fresh(cursor, hits)
    if not fresh:
        return []
    named = rule_destinations(cursor, {rule.id for _, rule in fresh})
    owners = {i: (rule.user_id, named.get(rule.id, [])) for i, (_, rule) in enumerate(fresh)}
    targets = route(cursor, owners)
    jobs = record_events(
        cursor,
        [
            NewEvent(
                user_id=rule.user_id,
                rule_id=rule.id,
                rule_name=rule.name,
                kind=rule.kind,
                symbol=hit.symbol,
                values={**hit.values, "rule": rule.name, "kind": rule.kind},
                targets=targets[i],
                fired_at=hit.fired_at,
                after_gap=hit.after_gap,
                dedup_key=hit.dedup_key,
                template=rule.message,
                muted_until=rule.muted_until,
            )
            for i, (hit, rule) in enumerate(fresh)
        ],
        now=now,
        lease_until=lease_until,
    )
    at = cursor.to_driver(_RULES.c.last_fired_at)
    cursor.many(_FIRED, [(at(hit.fired_at), hit.rule_id) for hit, _ in fresh])
    once = [(at(hit.fired_at), hit.rule_id) for hit, _ in fresh if hit.once]
    if once:
        cursor.many(_DISABLED, once)
    return jobs


def record(
    db: Database,
    hits: list[Hit],
    prices: Mapping[str, Ticker],
    accounts: Mapping[int, Mapping[str, Any]],
    now: datetime,
) -> list[int]:
    """Record hits (events, deliveries, rule state) and the state they came from, atomically;
    returns the ids of the deliveries it created."""
    with db.writing() as session:
        jobs = _record(Cursor(session), hits, prices, accounts, now)
        session.commit()
        return [j.delivery_id for j in jobs]


def record_claimed(
    db: Database,
    hits: list[Hit],
    prices: Mapping[str, Ticker],
    accounts: Mapping[int, Mapping[str, Any]],
    now: datetime,
    lease: timedelta,
) -> list[Job]:
    """`record`, with the new deliveries added claimed, leased until now + lease; returns
    their jobs (those of a muted owner are held instead, as any claim does)."""
    with db.writing() as session:
        jobs = _record(Cursor(session), hits, prices, accounts, now, lease_until=now + lease)
        session.commit()
        return jobs


def _record(
    cursor: Cursor,
    hits: list[Hit],
    prices: Mapping[str, Ticker],
    accounts: Mapping[int, Mapping[str, Any]],
    now: datetime,
    *,
    lease_until: datetime | None = None,
) -> list[Job]:
    jobs = _record_hits(cursor, hits, now, lease_until) if hits else []
    if prices:
        tickers = [
            (t.symbol, t.last, t.bid, t.ask, t.day and t.day.change_percent, utc(t.timestamp), now)
            for t in prices.values()
        ]
        cursor.insert(_TICKERS, _TICKER_COLUMNS, tickers, key="symbol")
    if accounts:
        state = [(f"{ACCOUNT_STATE}{a}", dict(values), now) for a, values in accounts.items()]
        cursor.insert(_STATE, ("key", "value", "updated_at"), state, key="key")
    return jobs
