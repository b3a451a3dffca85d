"""The engine's loop: feed events in, hits out to the outbox, rules and subscriptions kept in
step with the database.

Evaluation runs in the feed's sink, in memory. A recorder task writes the pending hits, the
rules' state changes and the prices they were computed from in one transaction, so a price
is never persisted ahead of a hit it caused. A poller follows `rule_changes` (edits made by
any process) and account status, and subscribes to exactly what the enabled rules need.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from alerts.db.session import Database
from alerts.domain.events import BalanceUpdate, FeedEvent, Ticker
from alerts.domain.hits import Hit
from alerts.domain.rules import RuleKind
from alerts.engine import store
from alerts.engine.armed import Armed
from alerts.engine.evaluate import Evaluator
from alerts.feed import FeedClient, FeedConfig, Subscription
from alerts.feed.errors import AuthRejected, RequestRejected
from alerts.security import SecretBox, SecretsUnavailable, UndecryptableSecret

logger = logging.getLogger("alerts.engine")

_CHANGES_KEPT = timedelta(hours=1)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class EngineConfig:
    """Where the exchange is and how often the engine looks at the database."""

    feed: FeedConfig
    poll_interval: float = 0.5
    flush_interval: float = 0.25
    orderbook_depth: int = 5
    retry_delay: float = 1.0


def subscription_for(rule: Armed, depth: int) -> Subscription | None:
    """The public channel a market rule needs (None for account rules)."""
    symbol, kind = rule.symbol or "", rule.kind
    if kind in (RuleKind.PRICE_CROSS, RuleKind.PRICE_RANGE, RuleKind.PERCENT_CHANGE):
        return Subscription.ticker(symbol)
    if kind is RuleKind.CANDLE_CLOSE:
        return Subscription.candles(symbol, str(rule.extra))
    if kind is RuleKind.LARGE_TRADE:
        return Subscription.trades(symbol)
    if kind is RuleKind.SPREAD:
        return Subscription.orderbook(symbol, depth)
    return None


class Engine:
    """Runs rules against the exchange until stopped."""

    def __init__(
        self,
        db: Database,
        config: EngineConfig,
        box: SecretBox,
        *,
        clock: Callable[[], datetime] = _now,
        on_recorded: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.on_recorded = on_recorded
        self.config = config
        self.box = box
        self.clock = clock
        self.evaluator = Evaluator()
        self.public = FeedClient(
            replace(config.feed, name="public", token=None, account=None),
            self._on_event,
            on_disconnect=self._feed_lost,
        )
        self.private: dict[int, FeedClient] = {}
        self.recorded = 0
        self._subs: Counter[Subscription] = Counter()
        self._sub_cache: dict[tuple[object, ...], Subscription | None] = {}
        self._accounts: Counter[int] = Counter()
        self._refused: dict[int, datetime] = {}
        self._pending: list[Hit] = []
        self._prices: dict[str, Ticker] = {}
        self._balances: set[int] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_change = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._private_tasks: dict[int, asyncio.Task[None]] = {}

    # --- rules in and out ----------------------------------------------------------------

    def _count(self, rule: Armed, delta: int) -> None:
        if rule.account is not None:
            self._accounts[rule.account] += delta
            return
        key = (rule.kind, rule.symbol, rule.extra)
        sub = self._sub_cache.get(key)
        if sub is None:
            sub = self._sub_cache[key] = subscription_for(rule, self.config.orderbook_depth)
        if sub is not None:
            self._subs[sub] += delta

    def arm(self, rule: Armed) -> None:
        """Start watching a rule (replacing an older version of it)."""
        self.disarm(rule.id)
        self.evaluator.add(rule)
        self._count(rule, 1)

    def disarm(self, rule_id: int) -> None:
        """Stop watching a rule."""
        old = self.evaluator.remove(rule_id)
        if old is not None:
            self._count(old, -1)

    # --- the feed side -------------------------------------------------------------------

    def _feed_lost(self) -> None:
        # Every symbol's next price (the snapshot on resubscribing, or the next push) is the
        # first after a gap: a crossing in between fires on it, and says so.
        self.evaluator.gaps = {symbol for symbol, _ in self.evaluator.prices}

    def _on_event(self, event: FeedEvent) -> None:
        hits = self.evaluator.evaluate(event, self.clock())
        if self.evaluator.disarmed:
            for rule in self.evaluator.disarmed:
                self._count(rule, -1)
            self.evaluator.disarmed.clear()
        if isinstance(event, Ticker):
            self._prices[event.symbol] = event
        elif isinstance(event, BalanceUpdate) and event.account and event.account.isdigit():
            self._balances.add(int(event.account))
        if hits:
            self._pending.extend(hits)
            self._wake.set()

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load rules and state, connect, and start the background tasks."""
        started = time.perf_counter()
        self._last_change = await asyncio.to_thread(store.latest_change, self.db)
        prices = await asyncio.to_thread(store.load_prices, self.db)
        balances = await asyncio.to_thread(store.load_balances, self.db)
        self.evaluator.prices.update(prices)
        self.evaluator.balances.update(balances)
        self.evaluator.gaps = {symbol for symbol, _ in prices}
        await asyncio.to_thread(self._load_rules)
        logger.info(
            "armed %d rules in %.1f s", len(self.evaluator.rules), time.perf_counter() - started
        )
        self._tasks = [
            asyncio.create_task(self.public.run(), name="feed public"),
            asyncio.create_task(self._record_loop(), name="engine recorder"),
            asyncio.create_task(self._poll_loop(), name="engine poller"),
        ]
        await self._sync()

    def _load_rules(self) -> None:
        self.evaluator.add_many(self._counted(store.load_rules(self.db)))
        # A million long-lived rule objects would make every full garbage collection walk
        # them all; frozen, the collector leaves them alone.
        gc.collect()
        gc.freeze()

    def _counted(self, rules: Iterable[Armed]) -> Iterator[Armed]:
        for rule in rules:
            self._count(rule, 1)
            yield rule

    async def stop(self) -> None:
        """Disconnect, record what is pending, and stop."""
        self._stopping.set()
        self._wake.set()
        await self.public.stop()
        for client in list(self.private.values()):
            await client.stop()
        for task in [*self._tasks, *self._private_tasks.values()]:
            task.cancel()
        for task in [*self._tasks, *self._private_tasks.values()]:
            with contextlib.suppress(asyncio.CancelledError, AuthRejected):
                await task
        await self._flush()

    async def run(self) -> None:
        """Start, then run until `stop()` is called (or the task is cancelled)."""
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            if not self._stopping.is_set():
                await self.stop()

    # --- recording -----------------------------------------------------------------------

    async def _flush(self, *, everything: bool = True) -> None:
        """Record the pending hits. Every flush takes all of them, so the prices written with
        it can never be ahead of a hit; a flush for fresh hits writes only their symbols'
        prices (the rest wait for the periodic flush), to keep alert latency low."""
        hits, self._pending = self._pending, []
        if everything:
            prices, self._prices = self._prices, {}
            accounts, self._balances = self._balances, set()
        else:
            symbols = {h.symbol for h in hits if h.symbol}
            prices = {s: self._prices.pop(s) for s in symbols if s in self._prices}
            accounts = set()
        if not (hits or prices or accounts):
            return
        balances = {a: dict(self.evaluator.balances.get(a, {})) for a in accounts}
        try:
            await asyncio.to_thread(store.record, self.db, hits, prices, balances, self.clock())
        except Exception:
            # Keep everything for the next attempt; newer prices win over the retried ones.
            self._pending[:0] = hits
            self._prices = {**prices, **self._prices}
            self._balances |= accounts
            raise
        self.recorded += len(hits)
        if hits and self.on_recorded is not None:
            self.on_recorded()  # e.g. wake the delivery worker in this process

    async def _record_loop(self) -> None:
        interval = self.config.flush_interval
        last_full = time.monotonic()
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            everything = time.monotonic() - last_full >= interval
            try:
                await self._flush(everything=everything)
            except Exception:
                logger.exception("recording hits failed; retrying")
                await asyncio.sleep(self.config.retry_delay)
                continue
            if everything:
                last_full = time.monotonic()

    # --- following the database ----------------------------------------------------------

    async def _poll_loop(self) -> None:
        pruned = 0.0
        while not self._stopping.is_set():
            await asyncio.sleep(self.config.poll_interval)
            try:
                await self._apply_changes()
                await self._sync()
                if time.monotonic() - pruned > 600:
                    pruned = time.monotonic()
                    cutoff = self.clock() - _CHANGES_KEPT
                    await asyncio.to_thread(store.prune_changes, self.db, cutoff)
            except Exception:
                logger.exception("following rule changes failed; retrying")

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
        await self._sync_accounts()

    async def _sync_public(self) -> None:
        wanted = {sub for sub, n in self._subs.items() if n > 0}
        current = self.public.subscriptions
        for sub in current - wanted:
            await self.public.unsubscribe(sub)
        for sub in wanted - current:
            try:
                await self.public.subscribe(sub)
            except RequestRejected as exc:
                logger.warning("cannot subscribe %s %s: %s", sub.channel, sub.symbol, exc)
        for sub in [s for s, n in self._subs.items() if n <= 0]:
            del self._subs[sub]

    async def _sync_accounts(self) -> None:
        wanted = {a for a, n in self._accounts.items() if n > 0}
        for account in set(self.private) - wanted:
            await self._close_account(account)
        missing = wanted - set(self.private)
        if not missing:
            return
        info = await asyncio.to_thread(store.accounts, self.db, missing)
        for account in missing:
            details = info.get(account)
            if details is None:
                continue
            if details.status == "rejected":
                self._refused.setdefault(account, details.updated_at)
                continue
            self._refused.pop(account, None)
            self._open_account(details)

    def _open_account(self, details: store.AccountInfo) -> None:
        try:
            token = self.box.open(details.token_sealed)
        except (SecretsUnavailable, UndecryptableSecret):
            logger.error(
                "account %s: its token cannot be decrypted (is ALERTS_SECRET_KEY the key "
                "it was stored with?)",
                details.id,
            )
            return
        config = replace(self.config.feed, name=f"account {details.id}", token=token)
        config = replace(config, account=str(details.id))
        client = FeedClient(config, self._on_event)
        self.private[details.id] = client
        self._private_tasks[details.id] = asyncio.create_task(
            self._run_account(details.id, client), name=f"feed account {details.id}"
        )

    async def _run_account(self, account: int, client: FeedClient) -> None:
        await client.subscribe(Subscription.balances())
        await client.subscribe(Subscription.active_orders())
        try:
            await client.run()
        except AuthRejected as exc:
            logger.warning("account %s: the exchange refused its token: %s", account, exc)
            self.private.pop(account, None)
            self._private_tasks.pop(account, None)
            self._refused[account] = self.clock()
            await asyncio.to_thread(
                store.reject_account, self.db, account, exc.message, self.clock()
            )

    async def _close_account(self, account: int) -> None:
        client = self.private.pop(account, None)
        task = self._private_tasks.pop(account, None)
        if client is not None:
            await client.stop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, AuthRejected):
                await task
