"""Recording the engine's hits. Each write commits the pending hits (events, deliveries, rule
state) together with the prices and account states they were computed from, so nothing persisted
is ever ahead of a hit it caused (a restart would miss that crossing) nor behind one already
recorded (a restart would fire it again).

Hits are written the moment they are found, with only their own symbols' prices; the other
prices and the account states follow every `interval`, in small batches with the loop free in
between, so a hit waits behind at most one short batch. Writes take turns in one task (one
writer: SQLite has only one, and the order of writes is what keeps prices and hits in step).

The deliveries of each hit go in pending, through the outbox's one `enqueue`, and their
commit wakes the delivery workers (of this process at once, of the others through
PostgreSQL's NOTIFY): the engine never sends, however the service is deployed.

One bad row never holds up the others. When a write fails and the database still answers,
the batch is written again one hit (and one price, one account's state) at a time, and
what fails even alone goes to `dead_letters` with its error (see `deadletters`). When the
database does not answer, everything waits for the next attempt, and `failing_for` tells
the health check how long that has lasted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from alerts.db.recording import clear_rule_states, record
from alerts.db.session import Database
from alerts.domain.events import Ticker
from alerts.domain.hits import Hit
from alerts.engine import deadletters

logger = logging.getLogger("alerts.engine")


class Recorder:
    """Holds what the engine has yet to write, and writes it (see the module's docstring)."""

    def __init__(
        self,
        db: Database,
        snapshot: Callable[[int], dict[str, Any]],
        clock: Callable[[], datetime],
        *,
        interval: float,
        retry_delay: float,
        batch: int = 25,
    ) -> None:
        self.db = db
        self.snapshot = snapshot  # an account's state (balances, orders reported), at write time
        self.clock = clock
        self.interval = interval
        self.retry_delay = retry_delay
        self.batch = batch
        self.recorded = 0
        self.failures = 0  # writes that failed (each then retried, or split up)
        self.dead_lettered = 0  # hits, prices and balances kept in dead_letters
        self._dead_at: deque[float] = deque(maxlen=10_000)
        self._failing_since: float | None = None
        self._hits: list[Hit] = []
        self._prices: dict[str, Ticker] = {}
        self._accounts: set[int] = set()
        self._rearmed: set[int] = set()
        self._wake = asyncio.Event()

    def add(self, hits: list[Hit]) -> None:
        """Hits to record now."""
        self._hits.extend(hits)
        # A hit's own rule state is newer than a re-arm still waiting to be written.
        self._rearmed.difference_update(h.rule_id for h in hits if h.rule_state is not None)
        self._wake.set()

    def rearmed(self, rule_ids: list[int]) -> None:
        """Rules that re-armed (`alerts.engine.rearm`): their stored wait is cleared with the
        next periodic write."""
        self._rearmed.update(rule_ids)

    def ticker(self, ticker: Ticker) -> None:
        """A symbol's latest prices, to persist with its next hit or periodically."""
        self._prices[ticker.symbol] = ticker

    def account(self, account: int) -> None:
        """An account whose state changed (balances, orders reported), to persist
        periodically."""
        self._accounts.add(account)

    @property
    def failing_for(self) -> float:
        """Seconds since recording started failing (the database not answering); 0 if not."""
        since = self._failing_since
        return 0.0 if since is None else time.monotonic() - since

    def dead_letters_since(self, seconds: float) -> int:
        """How many things went to `dead_letters` in the last `seconds`."""
        cutoff = time.monotonic() - seconds
        return sum(1 for at in self._dead_at if at >= cutoff)

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
                # Safe to go on: `_write` kept everything it could not write (dead-lettered
                # what failed alone), so the next attempt writes it; /readyz shows the outage.
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    logger.exception("recording failed: the database does not answer; retrying")
                await asyncio.sleep(self.retry_delay)
            else:
                if self._failing_since is not None:
                    logger.warning("recording works again after %.0f s", self.failing_for)
                self._failing_since = None

    async def flush(self) -> None:
        """Write everything pending (on stopping, and for tests)."""
        await self._write(list(self._prices), every=True)
        await self._write_rearmed()

    async def _write_rearmed(self) -> None:
        if self._rearmed:
            cleared, self._rearmed = self._rearmed, set()
            try:
                await self.db.call(clear_rule_states, self.db, cleared)
            except Exception:
                self._rearmed |= cleared  # for the next round (`run` logs the outage)
                raise

    async def _write_state(self) -> None:
        await self._write_rearmed()
        # The symbols waiting now; prices arriving meanwhile wait for the next round.
        symbols = list(self._prices)
        for start in range(0, max(len(symbols), 1), self.batch):
            # What waits goes first: pushes (and their hits, which the next batch writes
            # first), the delivery worker of this process.
            await asyncio.sleep(0)
            await self._write(symbols[start : start + self.batch], every=start == 0)

    async def _write(self, symbols: Sequence[str] = (), *, every: bool = False) -> None:
        # Taking hits, prices and balances happens with no await in between, so every hit
        # found up to the prices taken is in this write or an earlier one.
        hits, self._hits = self._hits, []
        wanted = {h.symbol for h in hits if h.symbol}.union(symbols)
        prices = {s: self._prices.pop(s) for s in wanted if s in self._prices}
        # An account hit's state goes with it (what it reported), as a price with its crossing.
        accounts = {int(a) for h in hits if h.kind in _ACCOUNT_KINDS and (a := _account(h))}
        if every:
            accounts |= self._accounts
        self._accounts -= accounts
        if not (hits or prices or accounts):
            return
        balances = {a: self.snapshot(a) for a in accounts}
        now = self.clock()
        try:
            await self._record(hits, prices, balances, now)
        except Exception:
            # One bad row must not cost the others: if the database still answers, write them
            # one by one (`_one_by_one` logs and dead-letters what fails alone); if not, keep
            # it all for the next attempt and let `run` log the outage.
            self.failures += 1
            if not await self.db.call(deadletters.database_answers, self.db):
                self._retry_later(hits, prices, balances)
                raise
            await self._one_by_one(hits, prices, balances, now)
        else:
            self.recorded += len(hits)

    async def _record(
        self,
        hits: list[Hit],
        prices: Mapping[str, Ticker],
        balances: Mapping[int, Mapping[str, Any]],
        now: datetime,
    ) -> None:
        await self.db.call(record, self.db, hits, prices, balances, now)

    def _retry_later(
        self,
        hits: list[Hit],
        prices: Mapping[str, Ticker],
        balances: Mapping[int, Mapping[str, Any]],
    ) -> None:
        # Kept for the next attempt; newer prices and balances win over the retried ones.
        self._hits[:0] = hits
        self._prices = {**prices, **self._prices}
        self._accounts |= set(balances)

    async def _one_by_one(
        self,
        hits: list[Hit],
        prices: dict[str, Ticker],
        balances: dict[int, dict[str, Any]],
        now: datetime,
    ) -> None:
        """The batch again, a hit (with its own price or balances) at a time, then the other
        prices and balances one by one; what fails alone is dead-lettered. If the database
        stops answering meanwhile, what is left waits for the next attempt."""
        for i, hit in enumerate(hits):
            own = {hit.symbol: prices.pop(hit.symbol)} if hit.symbol in prices else {}
            account = _account(hit) if hit.kind in _ACCOUNT_KINDS else None
            mine = {int(account): balances.pop(int(account))} if account in _keys(balances) else {}
            try:
                await self._record([hit], own, mine, now)
                self.recorded += 1
                continue
            except Exception as exc:  # this hit alone: `_dead` logs and keeps it, or re-raises
                if not await self._dead(exc, hit=hit):
                    self._retry_later(hits[i:], {**own, **prices}, {**mine, **balances})
                    raise
            prices.update(own)  # the hit is kept; its price and balances may still be written
            balances.update(mine)
        # Then every other price, and every account's balances, alone.
        singles: list[tuple[str, dict[str, Ticker], dict[int, dict[str, Any]]]] = [
            *(("price", {symbol: ticker}, {}) for symbol, ticker in prices.items()),
            *(("account", {}, {account: state}) for account, state in balances.items()),
        ]
        for n, (kind, price, balance) in enumerate(singles):
            try:
                await self._record([], price, balance, now)
            except Exception as exc:  # this row alone: `_dead` logs and keeps it, or re-raises
                symbol = next(iter(price), None)
                kept = (
                    deadletters.ticker_values(price[symbol])
                    if symbol
                    else deadletters.balance_values(balance)
                )
                if not await self._dead(exc, kind=kind, symbol=symbol, values=kept):
                    left = singles[n:]
                    self._retry_later(
                        [],
                        {k: v for _, p, _ in left for k, v in p.items()},
                        {k: v for _, _, b in left for k, v in b.items()},
                    )
                    raise

    async def _dead(
        self,
        exc: Exception,
        *,
        hit: Hit | None = None,
        kind: str = "price",
        symbol: str | None = None,
        values: Mapping[str, object] = {},
    ) -> bool:
        """Dead-letter what failed on its own; False if the database stopped answering
        (then nothing was kept, and the caller keeps it for later)."""
        self.failures += 1
        if not await self.db.call(deadletters.database_answers, self.db):
            return False
        try:
            await self.db.call(
                deadletters.write,
                self.db,
                kind="hit" if hit is not None else kind,
                rule_id=hit.rule_id if hit is not None else None,
                symbol=hit.symbol if hit is not None else symbol,
                values=dict(hit.values if hit is not None else values),
                error=exc,
                now=self.clock(),
            )
        except Exception:
            # The row is cleaned to fit, so this is a bug; going on loses this one row (as
            # the log says, with what it held), where stopping would lose every hit after it.
            logger.exception(
                "could not even dead-letter a %s (rule %s, %s); it is dropped: %s",
                "hit" if hit is not None else kind,
                hit.rule_id if hit is not None else None,
                deadletters.clean(hit.symbol if hit is not None else symbol, 40),
                deadletters.describe(exc),
            )
        self.dead_lettered += 1
        self._dead_at.append(time.monotonic())
        return True


_ACCOUNT_KINDS = ("balance", "order")


def _account(hit: Hit) -> str | None:
    account = hit.values.get("account")
    return account if account and account.isdigit() else None


def _keys(balances: Mapping[int, object]) -> set[str]:
    return {str(a) for a in balances}
