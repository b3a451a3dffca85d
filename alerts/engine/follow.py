"""The engine's half that follows the database: rules armed and disarmed as they change (in
any process), subscriptions kept to exactly what the armed rules need, refused symbols and
stale feeds reported to the rules' owners. A base of `alerts.engine.runner.Engine`, which
holds the state named here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from alerts.db.session import Database
from alerts.engine import staleness, store
from alerts.engine.armed import Armed
from alerts.engine.evaluate import Evaluator
from alerts.engine.private import AccountConnections
from alerts.engine.recorder import Recorder
from alerts.engine.refusals import Refusals
from alerts.engine.staleness import StalenessWatch
from alerts.engine.wanted import Wanted
from alerts.feed import FeedClient
from alerts.feed.errors import RequestRejected

if TYPE_CHECKING:
    from alerts.engine.runner import EngineConfig

logger = logging.getLogger("alerts.engine")

_CHANGES_KEPT = timedelta(hours=1)


class Following:
    """Keeps the engine's rules and subscriptions in step with the database."""

    db: Database
    config: EngineConfig
    clock: Callable[[], datetime]
    evaluator: Evaluator
    wanted: Wanted
    public: FeedClient
    private: AccountConnections
    refusals: Refusals
    recorder: Recorder
    staleness: StalenessWatch
    _stopping: asyncio.Event
    _last_change: int

    # --- rules in and out ----------------------------------------------------------------

    def arm(self, rule: Armed) -> None:
        """Start watching a rule (replacing an older version of it)."""
        self.disarm(rule.id)
        self.evaluator.add(rule)
        self.wanted.count(rule, 1)

    def disarm(self, rule_id: int) -> None:
        """Stop watching a rule."""
        old = self.evaluator.remove(rule_id)
        if old is not None:
            self.wanted.count(old, -1)

    async def _tell_staleness(self) -> None:
        went, back = self.staleness.check(time.perf_counter())
        for symbol in went:
            await asyncio.to_thread(
                staleness.notify,
                self.db,
                symbol,
                staleness.STALE,
                self.staleness.after,
                self.clock(),
            )
        for symbol in back:
            await asyncio.to_thread(
                staleness.notify, self.db, symbol, staleness.RECOVERED, 0, self.clock()
            )

    def _keep_accounts(self) -> None:
        for account in self.private.clients:
            self.recorder.account(account)

    async def _poll_loop(self) -> None:
        pruned = kept = 0.0
        while not self._stopping.is_set():
            await asyncio.sleep(self.config.poll_interval)
            try:
                await self._apply_changes()
                await self._sync()
                await self._report_symbols()
                await self._tell_staleness()
                if time.monotonic() - kept > 60:  # a connected account's history moves on
                    kept = time.monotonic()
                    self._keep_accounts()
                if time.monotonic() - pruned > 600:
                    pruned = time.monotonic()
                    cutoff = self.clock() - _CHANGES_KEPT
                    await asyncio.to_thread(store.prune_changes, self.db, cutoff)
            except Exception:
                # The database refused or is down (or a bug in one step). Safe to go on: changes
                # are read from `_last_change` on, subscriptions from the rules armed, symbol
                # reports stay queued until stored, so the next round, a poll interval later,
                # picks up where this one failed. Only a staleness notice that failed is not
                # sent again: the symbol's next change of state is.
                logger.exception(
                    "following rule changes (after change %d) failed; retrying in %.2f s",
                    self._last_change,
                    self.config.poll_interval,
                )

    async def _apply_changes(self) -> None:
        while True:
            last, changed = await asyncio.to_thread(store.changes_since, self.db, self._last_change)
            if not changed:
                return
            for rule_id, rule in changed.items():
                if rule is None:
                    self.disarm(rule_id)
                else:
                    self.arm(rule)
            self._last_change = last

    async def _sync(self) -> None:
        await self._sync_public()
        await self.private.sync(self.wanted.accounts())

    async def _sync_public(self) -> None:
        wanted = self.wanted.channels()
        symbols = {sub.symbol for sub in wanted if sub.symbol}
        for symbol in set(self.staleness.last) - symbols:
            self.staleness.forget(symbol)
        for symbol in symbols:
            self.staleness.follow(symbol, time.perf_counter())
        current = self.public.subscriptions
        for sub in current - wanted:
            await self.public.unsubscribe(sub)
        for sub in wanted - current:
            if not self.refusals.may_ask(sub):
                continue  # refused before: its backoff, or the retry budget, says not yet
            with contextlib.suppress(RequestRejected):  # the client logs it, refusals count it
                await self.public.subscribe(sub)
        for sub in self.wanted.drop_unwanted():
            self.refusals.forget(sub)

    async def _report_symbols(self) -> None:
        """Store the symbol statuses refusals found (and tell the rules' owners, once)."""
        reports = self.refusals.to_report
        for symbol, status in list(reports.items()):
            await asyncio.to_thread(store.report_symbol, self.db, symbol, status, self.clock())
            if reports.get(symbol, "") == status:  # (unless it changed meanwhile)
                del reports[symbol]
