"""The record stage: what an attempt's outcome is (sent, retry when, dead, disable the
destination) and writing outcomes to the database in small batches, 20 sends or 0.1 s,
whichever comes first, so that the window in which a crash can repeat a message stays short
and the database is not hit once per send."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from alerts.db import queue
from alerts.db.queue import Job, Outcome
from alerts.db.session import Database
from alerts.delivery.config import WorkerConfig
from alerts.delivery.errors import SendFailed
from alerts.metrics import Metrics

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

logger = logging.getLogger("alerts.delivery")


class Ledger:
    """Outcomes of a worker's attempts, on their way to the database."""

    def __init__(
        self,
        db: Database,
        config: WorkerConfig,
        clock: Callable[[], datetime],
        rng: random.Random,
        *,
        recorded: Callable[[list[Job]], None],
        metrics: Metrics,
    ) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.rng = rng
        self._recorded = recorded  # told of what is out of the worker's hands
        self.metrics = metrics
        self.sent = 0
        self.failed = 0
        self.dead = 0
        self._finished: list[queue.Attempt] = []
        self._counters: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._flushing: set[asyncio.Task[None]] = set()

    def after_failure(self, job: Job, exc: SendFailed) -> Outcome:
        """What to do about a failed attempt: retry when, give up, or disable the
        destination (and why)."""
        now = self.clock()
        if exc.new_chat_id:
            return Outcome(queue.FAILED, exc.reason, retry_at=now, new_chat_id=exc.new_chat_id)
        if exc.disable:
            return Outcome(queue.DEAD, exc.reason, disable_reason=exc.reason)
        if not exc.retry:
            return Outcome(queue.DEAD, exc.reason)
        if now - job.created_at >= self.config.max_age:
            return Outcome(queue.DEAD, f"gave up after {job.attempts} attempts: {exc.reason}")
        # The target's own word on when to come back (Retry-After, Telegram's retry_after)
        # beats the backoff's guess either way.
        wait = exc.retry_after
        if wait is None:
            wait = self.config.backoff.delay(job.attempts - 1, self.rng)
        return Outcome(queue.FAILED, exc.reason, retry_at=now + timedelta(seconds=wait))

    async def add(self, jobs: Sequence[Job], outcome: Outcome, seconds: float) -> None:
        """An attempt at `jobs` (one message) that took `seconds` and ended in `outcome`."""
        started = self.clock() - timedelta(seconds=seconds)
        ms = int(seconds * 1000)
        if not self._finished:
            # However the sends in flight go, this one is recorded within `record_interval`.
            asyncio.get_running_loop().call_later(self.config.record_interval, self._flush_later)
        self._finished.extend(queue.Attempt(job, outcome, started, ms) for job in jobs)
        self._count(jobs, outcome.status, self.clock())
        if outcome.status == queue.SENT:
            self.sent += len(jobs)
        elif outcome.status == queue.DEAD:
            self.dead += len(jobs)
            logger.warning("delivery given up (%d): %s", len(jobs), outcome.error)
        else:
            self.failed += len(jobs)
            logger.info("delivery failed, retrying (%d): %s", len(jobs), outcome.error)
        if len(self._finished) >= self.config.record_batch:
            await self.flush()

    async def flush(self) -> None:
        """Record every outcome added so far."""
        while self._finished:
            batch, self._finished = self._finished, []
            # A task of its own, which a stopping worker waits for: the send whose flush this
            # is may be cancelled meanwhile, but the batch is recorded all the same.
            task = asyncio.create_task(self._write(batch))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
            await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for the writes under way, then record what is left (a worker stopping)."""
        while self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        await self.flush()

    def _flush_later(self) -> None:
        if self._finished:
            task = asyncio.create_task(self.flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _write(self, batch: list[queue.Attempt]) -> None:
        try:
            # In a thread even on SQLite: it is not urgent, and the sends in flight meanwhile
            # should not wait for it between taking their rate-limit slot and going out.
            await asyncio.to_thread(queue.finish_many, self.db, batch)
        except Exception:
            # The database refused or is down. Safe to go on: the deliveries stay `sending`
            # under their lease and are sent again when it ends (at least once, never lost).
            logger.exception(
                "recording %d deliveries failed; they are sent again when their lease ends",
                len(batch),
            )
        finally:
            # Out of hand once recorded (before that, a scan would take them for leases run
            # out and claim them again), or when recording failed (then they are claimed
            # again once their lease ends).
            self._recorded([a.job for a in batch])

    def _count(self, jobs: Sequence[Job], status: str, now: datetime) -> None:
        for job in jobs:
            target = job.destination_kind or "none"
            counted = self._counters.get((target, status))
            if counted is None:  # `labels()` looks up and locks: once per (target, status)
                counted = self._counters[target, status] = (
                    self.metrics.deliveries.labels(target, status),
                    self.metrics.delivery_latency.labels(target),
                )
            counted[0].inc()
            if status == queue.SENT:
                counted[1].observe((now - job.fired_at).total_seconds())
