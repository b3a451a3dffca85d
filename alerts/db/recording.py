"""The recorder's writes: a batch of hits (events, deliveries, rule state) with the prices and
balances they were computed from, atomically, in a fixed handful of statements whatever the
batch's size. The deliveries go in through the outbox's one `enqueue`; the engine's loop
around these writes is `alerts.engine.recorder`."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Insert, Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from alerts.db.bulk import one_of, per_dialect
from alerts.db.models import EngineState, Event, Rule
from alerts.db.models import Ticker as TickerRow
from alerts.db.outbox import NewEvent, enqueue
from alerts.db.routing import RoutedRule, route_rules
from alerts.db.session import Database
from alerts.domain.events import Ticker, utc
from alerts.domain.hits import Hit

ACCOUNT_STATE = "account:"  # engine_state key prefix of an account's state

_TICKERS = TickerRow.metadata.tables["tickers"]
_STATE = EngineState.metadata.tables["engine_state"]
_RULES = Rule.metadata.tables["rules"]
_EVENTS = Event.metadata.tables["events"]

# Built once for each database (see `bulk`); this write is the one an alert waits for.
_R = _RULES.c
_SEEN = per_dialect(
    lambda dialect: select(_EVENTS.c.rule_id, _EVENTS.c.dedup_key).where(
        one_of(_EVENTS.c.rule_id, "ids", dialect), one_of(_EVENTS.c.dedup_key, "keys", dialect)
    )
)
_FIRED = per_dialect(
    lambda dialect: (
        update(_RULES)
        .where(one_of(_R.id, "ids", dialect))
        .values(fire_count=_R.fire_count + bindparam("n"), last_fired_at=bindparam("at"))
    )
)
_STATE_OF = update(_RULES).where(_R.id == bindparam("rid")).values(state=bindparam("state"))
_CLEARED = update(_RULES).where(_R.id.in_(bindparam("ids", expanding=True))).values(state=None)
_DISABLED = per_dialect(
    lambda dialect: (
        update(_RULES)
        .where(one_of(_R.id, "ids", dialect))
        .values(enabled=False, updated_at=bindparam("at"))
    )
)


def _upsert(table: Table, key: str, dialect: str) -> Insert:
    """INSERT … ON CONFLICT (key) DO UPDATE, on either database."""
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    changed = {c.name: stmt.excluded[c.name] for c in table.c if c.name != key}
    return stmt.on_conflict_do_update(index_elements=[key], set_=changed)


_UPSERTS: dict[tuple[str, str], Insert] = {
    (table.name, dialect): _upsert(table, key, dialect)
    for table, key in ((_TICKERS, "symbol"), (_STATE, "key"))
    for dialect in ("postgresql", "sqlite")
}


def _fresh(session: Session, hits: list[Hit]) -> list[tuple[Hit, RoutedRule]]:
    """The hits to record, each with its rule and where it goes: not those of rules deleted
    or paused since evaluation, nor occurrences already recorded (e.g. before a restart)."""
    conn = session.connection()
    dialect = conn.dialect.name
    rules = route_rules(session, {h.rule_id for h in hits})
    keyed = [(h.rule_id, h.dedup_key) for h in hits if h.dedup_key is not None]
    seen: set[tuple[int, str]] = set()
    if keyed:
        params = {"ids": sorted({r for r, _ in keyed}), "keys": sorted({k for _, k in keyed})}
        seen = {(r, k) for r, k in conn.execute(_SEEN[dialect], params)}
    fresh: list[tuple[Hit, RoutedRule]] = []
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


def _record_hits(session: Session, hits: list[Hit]) -> list[int]:
    """Events, deliveries and rule state for a batch of hits, in a fixed handful of
    statements; returns the new deliveries' ids."""
    fresh = _fresh(session, hits)
    if not fresh:
        return []
    added = enqueue(
        session,
        [
            NewEvent(
                user_id=rule.user_id,
                rule_id=rule.id,
                rule_name=rule.name,
                kind=rule.kind,
                symbol=hit.symbol,
                values={**hit.values, "rule": rule.name, "kind": rule.kind},
                destination_ids=[t.id for t in rule.targets],
                fired_at=hit.fired_at,
                after_gap=hit.after_gap,
                dedup_key=hit.dedup_key,
            )
            for hit, rule in fresh
        ],
    )
    _update_rules(session.connection(), [hit for hit, _ in fresh])
    return [d for a in added for d in a.delivery_ids]


def _update_rules(conn: Connection, hits: list[Hit]) -> None:
    """Count each rule's firings and, for `once` rules, disarm them: one statement per
    distinct (count, time), one for a whole burst."""
    fired: dict[int, tuple[int, datetime]] = {}
    for hit in hits:
        n, at = fired.get(hit.rule_id, (0, hit.fired_at))
        fired[hit.rule_id] = (n + 1, max(at, hit.fired_at))
    dialect = conn.dialect.name
    for (n, at), ids in _grouped(fired.items()).items():
        conn.execute(_FIRED[dialect], {"ids": ids, "n": n, "at": at})
    once = {hit.rule_id: fired[hit.rule_id][1] for hit in hits if hit.once}
    for at, ids in _grouped(once.items()).items():
        conn.execute(_DISABLED[dialect], {"ids": ids, "at": at})
    states = [{"rid": h.rule_id, "state": h.rule_state} for h in hits if h.rule_state]
    if states:  # re-arm waits (few: only rules with rearm_percent)
        conn.execute(_STATE_OF, states)


def clear_rule_states(db: Database, rule_ids: Collection[int]) -> None:
    """Forget the stored re-arm waits of rules that re-armed."""
    with db.writing() as session:
        session.execute(_CLEARED, {"ids": sorted(rule_ids)})
        session.commit()


K = TypeVar("K", bound=Hashable)


def _grouped(pairs: Iterable[tuple[int, K]]) -> dict[K, list[int]]:
    """Ids by what they share."""
    groups: dict[K, list[int]] = {}
    for rule_id, shared in pairs:
        groups.setdefault(shared, []).append(rule_id)
    return groups


def record(
    db: Database,
    hits: list[Hit],
    prices: Mapping[str, Ticker],
    accounts: Mapping[int, Mapping[str, Any]],
    now: datetime,
) -> list[int]:
    """Record hits (events, deliveries, rule state) and the state they came from, atomically;
    returns the ids of the deliveries it created (pending: the workers are woken)."""
    with db.writing() as session:
        ids = _record_hits(session, hits) if hits else []
        conn = session.connection()
        dialect = conn.dialect.name
        if prices:
            tickers = [
                {
                    "symbol": t.symbol,
                    "last": t.last,
                    "bid": t.bid,
                    "ask": t.ask,
                    "change_percent": t.day and t.day.change_percent,
                    "exchange_time": utc(t.timestamp),
                    "updated_at": now,
                }
                for t in prices.values()
            ]
            conn.execute(_UPSERTS["tickers", dialect], tickers)
        if accounts:
            state = [
                {"key": f"{ACCOUNT_STATE}{a}", "value": dict(values), "updated_at": now}
                for a, values in accounts.items()
            ]
            conn.execute(_UPSERTS["engine_state", dialect], state)
        session.commit()
        return ids
