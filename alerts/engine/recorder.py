"""Recording the engine's hits. Each write commits the pending hits (events, deliveries, rule
state) together with the prices and balances they were computed from, so nothing persisted
is ever ahead of a hit it caused (a restart would miss that crossing) nor behind one already
recorded (a restart would fire it again).

Hits are written the moment they are found, with only their own symbols' prices; the other
prices and the balances follow every `interval`, in small batches with the loop free in
between, so a hit waits behind at most one short batch. Writes take turns in one task (one
writer: SQLite has only one, and the order of writes is what keeps prices and hits in step).

With a `Handoff` (in `alerts run`, the delivery worker of this process), the write adds the
new deliveries already claimed (leased) for it, in the same transaction, and hands them over
as it commits: the worker sends them without a claim of its own or a poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from alerts.db.models import EngineState, Event, Rule
from alerts.db.models import Ticker as TickerRow
from alerts.db.outbox import NewEvent, record_events, route, rule_destinations
from alerts.db.queue import Job, leased_jobs
from alerts.db.session import Database
from alerts.domain.events import Ticker, utc
from alerts.domain.hits import Hit

logger = logging.getLogger("alerts.engine")


class Handoff(Protocol):
    """Who takes the deliveries a write has just committed, claimed for it, to send them."""

    @property
    def lease(self) -> timedelta:
        """How long a claim lasts before another worker may take it over."""
        ...

    def take(self, jobs: list[Job]) -> None:
        """Send these (claimed for you, and committed)."""
        ...


class Recorder:
    """Holds what the engine has yet to write, and writes it (see the module's docstring)."""

    def __init__(
        self,
        db: Database,
        balances: Mapping[int, Mapping[str, Decimal]],
        clock: Callable[[], datetime],
        *,
        interval: float,
        retry_delay: float,
        handoff: Handoff | None = None,
        batch: int = 25,
    ) -> None:
        self.db = db
        self.balances = balances  # the evaluator's, read at write time
        self.clock = clock
        self.interval = interval
        self.retry_delay = retry_delay
        self.handoff = handoff
        self.batch = batch
        self.recorded = 0
        self._hits: list[Hit] = []
        self._prices: dict[str, Ticker] = {}
        self._accounts: set[int] = set()
        self._wake = asyncio.Event()

    def add(self, hits: list[Hit]) -> None:
        """Hits to record now."""
        self._hits.extend(hits)
        self._wake.set()

    def ticker(self, ticker: Ticker) -> None:
        """A symbol's latest prices, to persist with its next hit or periodically."""
        self._prices[ticker.symbol] = ticker

    def balance(self, account: int) -> None:
        """An account whose balances changed, to persist periodically."""
        self._accounts.add(account)

    async def run(self, stopping: asyncio.Event) -> None:
        """Write hits as they come and the rest every `interval`, until `stopping` is set."""
        due = time.monotonic() + self.interval
        while not stopping.is_set():
            if not self._hits:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, due - time.monotonic())):
                        await self._wake.wait()  # (no extra task, unlike wait_for)
            self._wake.clear()
            try:
                if self._hits:
                    await self._write()
                if time.monotonic() >= due:
                    await self._write_state()
                    due = time.monotonic() + self.interval
            except Exception:
                logger.exception("recording hits failed; retrying")
                await asyncio.sleep(self.retry_delay)

    async def flush(self) -> None:
        """Write everything pending, in one transaction (on stopping, and for tests)."""
        await self._write(list(self._prices), every=True)

    async def _write_state(self) -> None:
        # The symbols waiting now; prices arriving meanwhile wait for the next round.
        symbols = list(self._prices)
        for start in range(0, max(len(symbols), 1), self.batch):
            # What waits goes first: the sending of deliveries just handed over, pushes (and
            # their hits, which the next batch writes first).
            await asyncio.sleep(0)
            await self._write(symbols[start : start + self.batch], every=start == 0)

    async def _write(self, symbols: Sequence[str] = (), *, every: bool = False) -> None:
        # Taking hits, prices and balances happens with no await in between, so every hit
        # found up to the prices taken is in this write or an earlier one.
        hits, self._hits = self._hits, []
        wanted = {h.symbol for h in hits if h.symbol}.union(symbols)
        prices = {s: self._prices.pop(s) for s in wanted if s in self._prices}
        # A balance hit's balances go with it, as a price goes with its crossing.
        accounts = {int(a) for h in hits if h.kind == "balance" and (a := h.values.get("account"))}
        if every:
            accounts |= self._accounts
        self._accounts -= accounts
        if not (hits or prices or accounts):
            return
        balances = {a: dict(self.balances.get(a, {})) for a in accounts}
        handoff, now = self.handoff, self.clock()
        try:
            if handoff is None:
                await self.db.call(record, self.db, hits, prices, balances, now)
            else:
                jobs = await self.db.call(
                    record_claimed, self.db, hits, prices, balances, now, handoff.lease
                )
        except Exception:
            # Keep everything for the next attempt; newer prices win over the retried ones.
            self._hits[:0] = hits
            self._prices = {**prices, **self._prices}
            self._accounts |= accounts
            raise
        self.recorded += len(hits)
        if handoff is not None and jobs:
            handoff.take(jobs)


_TICKERS = TickerRow.metadata.tables["tickers"]
_STATE = EngineState.metadata.tables["engine_state"]
_RULES = Rule.metadata.tables["rules"]
_EVENTS = Event.metadata.tables["events"]

# Statements built once, with parameters: building them per write cost about as much as
# running them.
_RULE_ROWS = sa_select(_RULES.c.id, _RULES.c.user_id, _RULES.c.name, _RULES.c.kind).where(
    _RULES.c.id.in_(bindparam("ids", expanding=True)), _RULES.c.enabled
)
_SEEN = sa_select(_EVENTS.c.rule_id, _EVENTS.c.dedup_key).where(
    _EVENTS.c.rule_id.in_(bindparam("rules", expanding=True)),
    _EVENTS.c.dedup_key.in_(bindparam("keys", expanding=True)),
)
_FIRED = (
    update(_RULES)
    .where(_RULES.c.id == bindparam("rid"))
    .values(fire_count=_RULES.c.fire_count + 1, last_fired_at=bindparam("fired"))
)
_DISABLED = (
    update(_RULES)
    .where(_RULES.c.id == bindparam("rid"))
    .values(enabled=False, updated_at=bindparam("fired"))
)


@functools.cache
def _upsert_statement(dialect: str, table: Table, key: str, columns: tuple[str, ...]) -> Any:
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[key], set_={c: stmt.excluded[c] for c in columns if c != key}
    )


def _upsert(session: Session, table: Table, rows: list[dict[str, Any]], key: str) -> None:
    # One statement run for all the rows: compiled once, not once per number of rows.
    if rows:
        dialect = session.get_bind().dialect.name
        session.execute(_upsert_statement(dialect, table, key, tuple(rows[0])), rows)


def _fresh(session: Session, hits: list[Hit]) -> list[tuple[Hit, Any]]:
    """The hits to record, each with its rule's row: not those of rules deleted or paused
    since evaluation, nor occurrences already recorded (e.g. before a restart)."""
    ids = sorted({h.rule_id for h in hits})
    rules = {r.id: r for r in session.execute(_RULE_ROWS, {"ids": ids})}
    keyed = [(h.rule_id, h.dedup_key) for h in hits if h.dedup_key is not None]
    seen: set[tuple[int, str]] = set()
    if keyed:
        params = {"rules": sorted({r for r, _ in keyed}), "keys": sorted({k for _, k in keyed})}
        seen = {(r, k) for r, k in session.execute(_SEEN, params)}
    fresh: list[tuple[Hit, Any]] = []
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


def _record_hits(session: Session, hits: list[Hit], lease_until: datetime | None) -> list[int]:
    """Events, deliveries and rule state for a batch of hits, in a fixed handful of
    statements; returns the new deliveries' ids."""
    fresh = _fresh(session, hits)
    if not fresh:
        return []
    named = rule_destinations(session, {rule.id for _, rule in fresh})
    owners = {i: (rule.user_id, named.get(rule.id, [])) for i, (_, rule) in enumerate(fresh)}
    targets = route(session, owners)
    deliveries = record_events(
        session,
        [
            NewEvent(
                user_id=rule.user_id,
                rule_id=rule.id,
                rule_name=rule.name,
                kind=rule.kind,
                symbol=hit.symbol,
                values={**hit.values, "rule": rule.name, "kind": rule.kind},
                destination_ids=targets[i],
                fired_at=hit.fired_at,
                after_gap=hit.after_gap,
                dedup_key=hit.dedup_key,
            )
            for i, (hit, rule) in enumerate(fresh)
        ],
        lease_until=lease_until,
    )
    session.execute(_FIRED, [{"rid": hit.rule_id, "fired": hit.fired_at} for hit, _ in fresh])
    once = [{"rid": hit.rule_id, "fired": hit.fired_at} for hit, _ in fresh if hit.once]
    if once:
        session.execute(_DISABLED, once)
    return deliveries


def record(
    db: Database,
    hits: list[Hit],
    prices: Mapping[str, Ticker],
    balances: Mapping[int, Mapping[str, Decimal]],
    now: datetime,
) -> list[int]:
    """Record hits (events, deliveries, rule state) and the state they came from, atomically;
    returns the ids of the deliveries it created."""
    with db.writing() as session:
        deliveries = _record(session, hits, prices, balances, now)
        session.commit()
        return deliveries


def record_claimed(
    db: Database,
    hits: list[Hit],
    prices: Mapping[str, Ticker],
    balances: Mapping[int, Mapping[str, Decimal]],
    now: datetime,
    lease: timedelta,
) -> list[Job]:
    """`record`, with the new deliveries added claimed, leased until now + lease; returns
    their jobs (those of a muted owner are held instead, as any claim does)."""
    with db.writing() as session:
        deliveries = _record(session, hits, prices, balances, now, lease_until=now + lease)
        jobs = leased_jobs(session, deliveries, now=now)
        session.commit()
        return jobs


def _record(
    session: Session,
    hits: list[Hit],
    prices: Mapping[str, Ticker],
    balances: Mapping[int, Mapping[str, Decimal]],
    now: datetime,
    *,
    lease_until: datetime | None = None,
) -> list[int]:
    deliveries = _record_hits(session, hits, lease_until) if hits else []
    _upsert(
        session,
        _TICKERS,
        [
            {
                "symbol": t.symbol,
                "last": t.last,
                "bid": t.bid,
                "ask": t.ask,
                "change_percent": t.day.change_percent if t.day else None,
                "exchange_time": utc(t.timestamp),
                "updated_at": now,
            }
            for t in prices.values()
        ],
        "symbol",
    )
    _upsert(
        session,
        _STATE,
        [
            {
                "key": f"balances:{account}",
                "value": {k: format(v, "f") for k, v in values.items()},
                "updated_at": now,
            }
            for account, values in balances.items()
        ],
        "key",
    )
    return deliveries
