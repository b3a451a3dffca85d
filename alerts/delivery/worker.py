"""The delivery worker: claim due deliveries, render, send, record, retry or give up.

Telegram messages to one chat go out in order, inside the rate limits; when more than a few
alerts for one chat are due at once (a pump firing dozens of rules), they go as one digest.
Apprise destinations are sent concurrently (bounded by the notifier).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from alerts.db.session import Database
from alerts.delivery import queue
from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message, digest, render
from alerts.delivery.queue import Job, Outcome
from alerts.delivery.telegram import TelegramNotifier
from alerts.feed.backoff import Backoff
from alerts.security import SecretBox, SecretsUnavailable, UndecryptableSecret

logger = logging.getLogger("alerts.delivery")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WorkerConfig:
    """How the worker paces itself and when it gives up."""

    poll_interval: float = 0.5
    batch: int = 200
    lease: timedelta = timedelta(seconds=60)
    max_age: timedelta = timedelta(hours=24)
    backoff: Backoff = field(
        default_factory=lambda: Backoff(initial=5.0, maximum=900.0, factor=2.0, jitter=0.2)
    )
    flood_threshold: int = 5
    record_batch: int = 20
    record_interval: float = 0.1


class DeliveryWorker:
    """Sends what the engine (or a test send) put in the outbox."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        telegram: TelegramNotifier | None,
        apprise: AppriseNotifier | None = None,
        config: WorkerConfig | None = None,
        clock: Callable[[], datetime] = _now,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.box = box
        self.telegram = telegram
        self.apprise = apprise or AppriseNotifier()
        self.config = config or WorkerConfig()
        self.clock = clock
        self.rng = rng or random.Random()
        self.sent = 0
        self.failed = 0
        self.dead = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._finished: list[queue.Attempt] = []
        self._oldest = 0.0

    def wake(self) -> None:
        """Look for due deliveries now (called when new ones are recorded)."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the current batch and return from `run()`."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Claim and send until stopped."""
        while not self._stopping.is_set():
            try:
                worked = await self.run_once()
            except Exception:
                logger.exception("delivery batch failed; retrying")
                worked = False
            if not worked and not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_interval)
                self._wake.clear()

    async def run_once(self) -> bool:
        """Claim one batch and send it; False when nothing was due."""
        cfg = self.config
        jobs = await asyncio.to_thread(
            queue.claim, self.db, now=self.clock(), lease=cfg.lease, limit=cfg.batch
        )
        if not jobs:
            return False
        chats: dict[int, list[Job]] = {}
        others: list[Job] = []
        for job in jobs:
            if job.destination_kind == "telegram" and job.destination_enabled and job.chat_id:
                chats.setdefault(job.chat_id, []).append(job)
            else:
                others.append(job)
        try:
            await asyncio.gather(
                *(self._send_chat(chat, group) for chat, group in chats.items()),
                *(self._send_one(job) for job in others),
            )
        finally:
            await self._flush()
        return True

    # --- sending -------------------------------------------------------------------------

    @staticmethod
    def _message(job: Job) -> Message:
        return render(
            kind=job.event_kind,
            rule_name=job.rule_name,
            values=job.values,
            template=job.template,
            rule_id=job.rule_id,
            test=job.test,
            after_gap=job.after_gap,
        )

    async def _send_chat(self, chat_id: int, jobs: list[Job]) -> None:
        if len(jobs) > self.config.flood_threshold:
            merged = digest([self._message(j) for j in jobs])
            await self._attempt(jobs, partial(self._telegram, chat_id, merged))
            return
        for job in jobs:
            await self._attempt([job], partial(self._telegram, chat_id, self._message(job)))

    async def _telegram(self, chat_id: int, message: Message) -> None:
        if self.telegram is None:
            raise SendFailed("Telegram delivery is off (TELEGRAM_BOT_TOKEN is not set)", retry=True)
        await self.telegram.send(chat_id, message)

    async def _send_one(self, job: Job) -> None:
        if job.destination_id is None:
            await self._record([job], Outcome(queue.DEAD, "the destination was deleted"), 0.0)
            return
        if not job.destination_enabled:
            reason = f"the destination is disabled ({job.disabled_reason or 'by its owner'})"
            await self._record([job], Outcome(queue.DEAD, reason), 0.0)
            return
        if job.destination_kind != "apprise" or job.url_sealed is None:
            await self._record([job], Outcome(queue.DEAD, "the destination has no address"), 0.0)
            return
        try:
            url = self.box.open(job.url_sealed)
        except (SecretsUnavailable, UndecryptableSecret):
            reason = "the Apprise URL cannot be decrypted (ALERTS_SECRET_KEY changed?)"
            await self._record([job], Outcome(queue.DEAD, reason), 0.0)
            return
        await self._attempt([job], partial(self.apprise.send, url, self._message(job)))

    async def _attempt(self, jobs: Sequence[Job], send: Callable[[], Awaitable[None]]) -> None:
        started = time.perf_counter()
        try:
            await send()
        except SendFailed as exc:
            outcome = self._after_failure(jobs[0], exc)
        else:
            outcome = Outcome(queue.SENT)
        await self._record(jobs, outcome, time.perf_counter() - started)

    def _after_failure(self, job: Job, exc: SendFailed) -> Outcome:
        now = self.clock()
        if exc.new_chat_id:
            return Outcome(queue.FAILED, exc.reason, retry_at=now, new_chat_id=exc.new_chat_id)
        if exc.disable:
            return Outcome(queue.DEAD, exc.reason, disable_reason=exc.reason)
        if not exc.retry:
            return Outcome(queue.DEAD, exc.reason)
        if now - job.created_at >= self.config.max_age:
            return Outcome(queue.DEAD, f"gave up after {job.attempts} attempts: {exc.reason}")
        wait = self.config.backoff.delay(job.attempts - 1, self.rng)
        if exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return Outcome(queue.FAILED, exc.reason, retry_at=now + timedelta(seconds=wait))

    async def _record(self, jobs: Sequence[Job], outcome: Outcome, seconds: float) -> None:
        started = self.clock() - timedelta(seconds=seconds)
        ms = int(seconds * 1000)
        if not self._finished:
            self._oldest = time.monotonic()
        self._finished.extend(queue.Attempt(job, outcome, started, ms) for job in jobs)
        if outcome.status == queue.SENT:
            self.sent += len(jobs)
        elif outcome.status == queue.DEAD:
            self.dead += len(jobs)
            logger.warning("delivery given up (%d): %s", len(jobs), outcome.error)
        else:
            self.failed += len(jobs)
            logger.info("delivery failed, retrying (%d): %s", len(jobs), outcome.error)
        # Recorded in small batches (20 sends or 0.1 s, whichever comes first): the window in
        # which a crash can repeat a message stays short, and the database is not hit once
        # per send.
        cfg = self.config
        if (
            len(self._finished) >= cfg.record_batch
            or time.monotonic() - self._oldest >= cfg.record_interval
        ):
            await self._flush()

    async def _flush(self) -> None:
        while self._finished:
            batch, self._finished = self._finished, []
            await asyncio.to_thread(queue.finish_many, self.db, batch)
