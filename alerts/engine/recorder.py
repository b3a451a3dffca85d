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
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from alerts.db.driver import Cursor, marks
from alerts.db.models import EngineState, Rule, User
from alerts.db.models import Ticker as TickerRow
from alerts.db.outbox import NewEvent, record_events, route, rule_destinations
from alerts.db.queue import Job
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
    balances: Mapping[int, Mapping[str, Decimal]],
    now: datetime,
) -> list[int]:
    """Record hits (events, deliveries, rule state) and the state they came from, atomically;
    returns the ids of the deliveries it created."""
    with db.writing() as session:
        jobs = _record(Cursor(session), hits, prices, balances, now)
        session.commit()
        return [j.delivery_id for j in jobs]


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
        jobs = _record(Cursor(session), hits, prices, balances, now, lease_until=now + lease)
        session.commit()
        return jobs


def _record(
    cursor: Cursor,
    hits: list[Hit],
    prices: Mapping[str, Ticker],
    balances: Mapping[int, Mapping[str, Decimal]],
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
    if balances:
        state = [
            (f"balances:{account}", {k: format(v, "f") for k, v in values.items()}, now)
            for account, values in balances.items()
        ]
        cursor.insert(_STATE, ("key", "value", "updated_at"), state, key="key")
    return jobs
