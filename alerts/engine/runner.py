"""The engine's loop: feed events in, hits out to the outbox, rules and subscriptions kept in
step with the database.

Evaluation runs in the feed's sink, in memory. The recorder (`alerts.engine.recorder`) writes
hits as they are found, with the rules' state changes and the prices they were computed
from, and enqueues their deliveries for the delivery workers. A poller (`alerts.engine.follow`)
follows `rule_changes` (edits made by any process) and account status, and subscribes to
exactly what the enabled rules need (`alerts.engine.wanted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from alerts.db.session import Database
from alerts.domain.events import BalanceUpdate, FeedEvent, Order, Ticker
from alerts.domain.hits import Hit
from alerts.engine import store
from alerts.engine.armed import Armed
from alerts.engine.catchup import CatchUp
from alerts.engine.evaluate import Evaluator
from alerts.engine.follow import Following
from alerts.engine.private import AccountConnections
from alerts.engine.recorder import Recorder
from alerts.engine.refusals import Refusals
from alerts.engine.staleness import StalenessWatch
from alerts.engine.wanted import Wanted
from alerts.feed import FeedClient, FeedConfig
from alerts.feed.errors import AuthRejected
from alerts.feed.rest import ExchangeRest
from alerts.feed.state import FeedState
from alerts.metrics import Metrics
from alerts.security import SecretBox

logger = logging.getLogger("alerts.engine")

_LOG_SKIPPED_EVERY = 60.0  # seconds, per rule


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EngineHealth:
    """What went wrong so far, for metrics and the health check."""

    rules_skipped: int
    recorder_failures: int
    dead_lettered: int
    failing_for: float
    dead_letters_last_minute: int


@dataclass
class EngineConfig:
    """Where the exchange is and how often the engine looks at the database."""

    feed: FeedConfig
    poll_interval: float = 0.5
    flush_interval: float = 0.25
    orderbook_depth: int = 5
    retry_delay: float = 1.0
    symbol_stale_after: float = 300.0
    refusals: Callable[[], Refusals] = Refusals  # refused subscriptions' backoff and budget
    rest_url: str | None = None  # XROCKET_API_URL: the order history, for fills missed


class Engine(Following):
    """Runs rules against the exchange until stopped."""

    def __init__(
        self,
        db: Database,
        config: EngineConfig,
        box: SecretBox,
        *,
        clock: Callable[[], datetime] = _now,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.box = box
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.evaluator = Evaluator()
        self.refusals = config.refusals()
        self.public = FeedClient(
            replace(config.feed, name="public", token=None, account=None),
            self._on_event,
            on_disconnect=self._feed_lost,
            on_refused=self.refusals.refused,
            on_subscribed=self.refusals.subscribed,
        )
        self.recorder = Recorder(
            db,
            self.evaluator.accounts.snapshot,
            clock,
            interval=config.flush_interval,
            retry_delay=config.retry_delay,
        )
        rest = ExchangeRest(config.rest_url) if config.rest_url else None
        catch_up = CatchUp(rest, self.evaluator.accounts, self._on_late)
        self.private = AccountConnections(db, box, config.feed, self._on_event, catch_up, clock)
        self.wanted = Wanted(config.orderbook_depth)
        self._stopping = asyncio.Event()
        self._last_change = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.staleness = StalenessWatch(config.symbol_stale_after)
        self._evaluated, self._evaluating = 0, 0.0
        self.rules_skipped = 0  # rule evaluations skipped because they raised
        self._skip_logged: dict[int, float] = {}

    # --- the feed side -------------------------------------------------------------------

    def _feed_lost(self) -> None:
        # Every symbol's next price (the snapshot on resubscribing, or the next push) is the
        # first after a gap: a crossing in between fires on it, and says so.
        self.evaluator.gaps = {symbol for symbol, _ in self.evaluator.prices}

    def _on_event(self, event: FeedEvent) -> None:
        started = time.perf_counter()
        hits = self.evaluator.evaluate(event, self.clock())
        self._evaluating += time.perf_counter() - started
        self._evaluated += 1
        symbol = getattr(event, "symbol", None)
        if symbol is not None:
            self.staleness.seen(symbol, started)
        self._evaluated_event(event, hits)

    def _on_late(self, order: Order, late: str) -> None:
        """An order from the history after a gap (see `alerts.engine.catchup`)."""
        self._evaluated_event(order, self.evaluator.evaluate_late(order, self.clock(), late))

    def _note_rearmed(self) -> None:
        rearmed = self.evaluator.market.waiting.rearmed
        if rearmed:
            self.recorder.rearmed(rearmed)
            rearmed.clear()

    def _evaluated_event(self, event: FeedEvent, hits: list[Hit]) -> None:
        self._note_rearmed()
        if self.evaluator.disarmed:
            for rule in self.evaluator.disarmed:
                self.wanted.count(rule, -1)
            self.evaluator.disarmed.clear()
        if self.evaluator.skipped:
            self._note_skipped(event)
        if isinstance(event, Ticker):
            self.recorder.ticker(event)
        elif isinstance(event, BalanceUpdate | Order) and event.account and event.account.isdigit():
            self.recorder.account(int(event.account))
        if hits:
            self.recorder.add(hits)
            for hit in hits:
                self.metrics.firings.labels(hit.kind).inc()

    def _note_skipped(self, event: FeedEvent) -> None:
        """Count the rules this push skipped by an error; log each at most once a minute."""
        now = time.monotonic()
        for rule_id, error in self.evaluator.skipped:
            self.rules_skipped += 1
            if now - self._skip_logged.get(rule_id, -_LOG_SKIPPED_EVERY) >= _LOG_SKIPPED_EVERY:
                if len(self._skip_logged) > 10_000:
                    self._skip_logged.clear()
                self._skip_logged[rule_id] = now
                logger.error(
                    "rule %s skipped on a %s push of %s: %s (the other rules stand)",
                    rule_id or "(none)",
                    type(event).__name__,
                    getattr(event, "symbol", None),
                    error,
                )
        self.evaluator.skipped.clear()

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load rules and state, connect, and start the background tasks."""
        started = time.perf_counter()
        self._last_change = await asyncio.to_thread(store.latest_change, self.db)
        prices = await asyncio.to_thread(store.load_prices, self.db)
        accounts = await asyncio.to_thread(store.load_accounts, self.db)
        self.evaluator.prices.update(prices)
        for account, state in accounts.items():
            self.evaluator.accounts.restore(account, state)
        self.evaluator.gaps = {symbol for symbol, _ in prices}
        await asyncio.to_thread(self._load_rules)
        self.evaluator.market.waiting.recheck(self.evaluator.prices)
        self._note_rearmed()
        logger.info(
            "armed %d rules in %.1f s", len(self.evaluator.rules), time.perf_counter() - started
        )
        self._tasks = [
            asyncio.create_task(self.public.run(), name="feed public"),
            asyncio.create_task(self.recorder.run(self._stopping), name="engine recorder"),
            asyncio.create_task(self._poll_loop(), name="engine poller"),
        ]
        await self._sync()
        self.metrics.watch_engine(self)

    def _load_rules(self) -> None:
        self.evaluator.add_many(self._counted(store.load_rules(self.db)))
        # A million long-lived rule objects would make every full garbage collection walk
        # them all; frozen, the collector leaves them alone.
        gc.collect()
        gc.freeze()

    def _counted(self, rules: Iterable[Armed]) -> Iterator[Armed]:
        for rule in rules:
            self.wanted.count(rule, 1)
            yield rule

    async def stop(self) -> None:
        """Disconnect, record what is pending, and stop."""
        self._stopping.set()
        self._keep_accounts()  # how far each account's history was followed, until now
        await self.public.stop()
        await self.private.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
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

    @property
    def recorded(self) -> int:
        """Hits recorded so far."""
        return self.recorder.recorded

    async def _flush(self) -> None:
        """Record everything pending now."""
        await self.recorder.flush()

    # --- what metrics and health checks see -----------------------------------------------

    @property
    def rules_loaded(self) -> int:
        """Rules armed now."""
        return len(self.evaluator.rules)

    @property
    def evaluations(self) -> tuple[int, float]:
        """Pushes evaluated so far, and the seconds that took."""
        return self._evaluated, self._evaluating

    @property
    def health(self) -> EngineHealth:
        """Its errors so far: rules skipped, writes failed, dead letters."""
        recorder = self.recorder
        return EngineHealth(
            rules_skipped=self.rules_skipped,
            recorder_failures=recorder.failures,
            dead_lettered=recorder.dead_lettered,
            failing_for=recorder.failing_for,
            dead_letters_last_minute=recorder.dead_letters_since(60.0),
        )

    def feed_states(self) -> list[FeedState]:
        """The public connection's state and each account connection's."""
        return [self.public.state, *self.private.states()]
