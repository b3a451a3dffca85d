"""The delivery worker: claim due deliveries, render, send, record, retry or give up.

Telegram messages to one chat go out in order, inside the rate limits, from one sender task
per chat with something to send; when more than a few alerts for one chat are due at once (a
pump firing dozens of rules, or alerts queued while the chat waits for its turn), they go as
one digest. Apprise destinations are sent concurrently (bounded by the notifier). A running
worker starts each send as it comes and goes on claiming, so a chat waiting for its turn or a
slow webhook holds up no one else; at most `batch` deliveries are in its hands at a time.

In the engine's process the worker is also handed deliveries the moment they are committed,
already claimed for it in the engine's transaction (`take`), and sends them at once; the scan
for other due deliveries (retries, test sends, other processes' firings, leases of a crashed
worker) runs every `poll_interval`. Either way a delivery is committed and claimed under a
lease before it is sent; what was handed over but not sent when the worker stops is given
back.
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
from typing import TypeVar

from alerts.db import queue
from alerts.db.queue import Job, Outcome
from alerts.db.session import Database
from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message, digest, render
from alerts.delivery.telegram import TelegramNotifier
from alerts.feed.backoff import Backoff
from alerts.metrics import DELIVERIES, DELIVERY_LATENCY
from alerts.security import SecretBox, SecretsUnavailable, UndecryptableSecret

logger = logging.getLogger("alerts.delivery")

T = TypeVar("T", int, list[Job])  # what a send task holds: a chat, or Apprise deliveries


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
        self._flushing: set[asyncio.Task[None]] = set()
        self._handed: list[Job] = []
        self._queued: dict[int, list[Job]] = {}  # per chat, for its sender
        self._senders: dict[int, asyncio.Task[None]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        # Deliveries started and not yet recorded (nor left to their lease, see `_forget`).
        self._holding: dict[int, Job] = {}

    @property
    def lease(self) -> timedelta:
        """How long the claims handed to `take` are leased for."""
        return self.config.lease

    def take(self, jobs: list[Job]) -> None:
        """Send these deliveries, just claimed for this worker (by the engine), now."""
        self._handed.extend(jobs)
        self._wake.set()

    async def stop(self) -> None:
        """Finish the current batch and return from `run()`."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Claim and send until stopped. Then the sends that have gone out are finished and
        recorded, and the rest (waiting for their turn, or not started) are given back."""
        try:
            await self._run()
            for task in self._sending:
                if not self._gone_out(task):
                    task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)
        finally:
            for task in self._sending:
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)
            await asyncio.shield(self._finish_and_release())

    def _gone_out(self, task: asyncio.Task[None]) -> bool:
        telegram = self.telegram is not None and self.telegram.has_gone_out(task)
        return telegram or self.apprise.has_gone_out(task)

    async def _finish_and_release(self) -> None:
        while self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)
        await self._flush()
        # Recorded sends are out of hand now: what is left never went out (stopped while
        # waiting for its turn, or before its task began), nor did what was handed over.
        unsent = self._handed + list(self._holding.values())
        self._handed, self._queued, self._holding = [], {}, {}
        await asyncio.to_thread(queue.release, self.db, unsent)

    async def _renew_leases(self) -> None:
        """Every third of a lease, extend the leases of what the worker still holds: a send
        may wait far longer than a lease (Telegram's `retry_after`, a mute's summary)."""
        every = self.config.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            held = list(self._holding)
            if held:
                try:
                    until = self.clock() + self.config.lease
                    await asyncio.to_thread(queue.renew, self.db, held, until)
                except Exception:
                    # The database refused or is down: the next renewal, a third of a lease
                    # later, still comes before the leases end, and at worst a delivery is
                    # sent twice (at least once), never lost.
                    logger.exception(
                        "renewing the leases of %d deliveries failed; trying again in %.1f s",
                        len(held),
                        every,
                    )

    async def _run(self) -> None:
        renewing = asyncio.create_task(self._renew_leases(), name="worker lease renewal")
        try:
            await self._scan_and_send()
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)

    async def _scan_and_send(self) -> None:
        cfg = self.config
        next_scan = 0.0
        while not self._stopping.is_set():
            worked = False
            try:
                if self._handed:
                    jobs, self._handed = self._handed, []
                    self._start(jobs)
                    worked = True
                room = cfg.batch - len(self._holding)
                if room > 0 and time.monotonic() >= next_scan:
                    jobs = await asyncio.to_thread(
                        queue.claim,
                        self.db,
                        now=self.clock(),
                        lease=cfg.lease,
                        limit=room,
                        held=set(self._holding),
                    )
                    self._start(jobs)
                    # A full batch: there may be more due, claimed as soon as there is room.
                    full = len(jobs) == room
                    next_scan = time.monotonic() + (0.0 if full else cfg.poll_interval)
                    worked = worked or bool(jobs)
            except Exception:
                # Claiming failed (the database refused or is down): nothing was taken, so
                # nothing is lost; the next scan, a poll interval later, tries again.
                logger.exception(
                    "claiming deliveries failed; retrying in %.2f s", cfg.poll_interval
                )
                next_scan = time.monotonic() + cfg.poll_interval
            if not worked and not self._handed and not self._stopping.is_set():
                wait = max(0.0, next_scan - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):  # no extra task, unlike wait_for
                        await self._wake.wait()
                self._wake.clear()

    async def run_once(self) -> bool:
        """Claim one batch of due deliveries (oldest first), send it and record the outcomes;
        False when nothing was due."""
        cfg = self.config
        jobs = await asyncio.to_thread(
            queue.claim, self.db, now=self.clock(), lease=cfg.lease, limit=cfg.batch
        )
        tasks = self._start(jobs)
        try:
            await asyncio.gather(*tasks)
        finally:
            await self._flush()
        return bool(jobs)

    def _start(self, jobs: list[Job]) -> list[asyncio.Task[None]]:
        """Start sending `jobs`: each chat's to its sender (started if it has none), each
        Apprise delivery in a task of its own; returns the tasks that send them."""
        self._holding.update((j.delivery_id, j) for j in jobs)
        chats: dict[int, list[Job]] = {}
        others: list[Job] = []
        for job in jobs:
            if job.destination_kind == "telegram" and job.destination_enabled and job.chat_id:
                chats.setdefault(job.chat_id, []).append(job)
            else:
                others.append(job)
        tasks: list[asyncio.Task[None]] = []
        for chat, group in chats.items():
            self._queued.setdefault(chat, []).extend(group)
            sender = self._senders.get(chat)
            if sender is None:
                sender = self._senders[chat] = self._spawn(self._sender, chat)
            tasks.append(sender)
        tasks += [self._spawn(self._send_group, g) for g in _apprise_groups(others)]
        return tasks

    def _spawn(self, send: Callable[[T], Awaitable[None]], what: T) -> asyncio.Task[None]:
        # The coroutine is made in the task: a task cancelled before its first step (the
        # worker stopping) would otherwise leave one never awaited.
        task = asyncio.create_task(self._settled(send, what))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        return task

    async def _settled(self, send: Callable[[T], Awaitable[None]], what: T) -> None:
        try:
            await send(what)
            # The last send in flight records what is finished (the rest is recorded in
            # batches as it goes, see `_record`).
            if len(self._sending) <= 1:
                await self._flush()
        except Exception:
            # A bug in rendering or a notifier (their expected failures are outcomes): what
            # this send held was let go (`_forget`), so its lease runs out and a later scan
            # sends it again; the other chats' sends go on.
            logger.exception(
                "sending %s failed; what it held is retried when its lease ends", _what(what)
            )

    async def _sender(self, chat_id: int) -> None:
        """Send what is queued for one chat, in order, until nothing is (or the worker
        stops)."""
        jobs: list[Job] = []
        try:
            while chat_id in self._queued and not self._stopping.is_set():
                jobs = self._queued.pop(chat_id)
                await self._send_chat(chat_id, jobs)
        except Exception:  # logged by `_settled`; not on cancellation (`stop` gives back)
            self._forget(jobs + self._queued.pop(chat_id, []))
            raise
        finally:
            del self._senders[chat_id]

    async def _send_group(self, jobs: list[Job]) -> None:
        try:
            await self._send_one(jobs)
        except Exception:  # logged by `_settled`; not on cancellation (`stop` gives back)
            self._forget(jobs)
            raise

    def _forget(self, jobs: list[Job]) -> None:
        """Out of this worker's hands: recorded, or left claimed (after the lease a scan takes
        them again)."""
        holding = len(self._holding)
        for job in jobs:
            self._holding.pop(job.delivery_id, None)
        if len(self._holding) < self.config.batch <= holding:
            self._wake.set()  # room to claim again

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
        held = [j for j in jobs if j.held]
        if held:  # what a mute held back: one summary, however few
            await self._attempt(held, partial(self._telegram, chat_id, _summary(held)))
            jobs = [j for j in jobs if not j.held]
        if len(jobs) > self.config.flood_threshold:
            merged = digest([self._message(j) for j in jobs])
            await self._attempt(jobs, partial(self._telegram, chat_id, merged))
            return
        for job in jobs:
            if self._stopping.is_set():
                return  # the rest are given back
            await self._attempt([job], partial(self._telegram, chat_id, self._message(job)))

    async def _telegram(self, chat_id: int, message: Message) -> None:
        if self.telegram is None:
            raise SendFailed("Telegram delivery is off (TELEGRAM_BOT_TOKEN is not set)", retry=True)
        await self.telegram.send(chat_id, message)

    async def _send_one(self, group: list[Job]) -> None:
        """One Apprise delivery, or a mute's summary of several to one destination."""
        job = group[0]
        if job.destination_id is None:
            await self._record(group, Outcome(queue.DEAD, "the destination was deleted"), 0.0)
            return
        if not job.destination_enabled:
            reason = f"the destination is disabled ({job.disabled_reason or 'by its owner'})"
            await self._record(group, Outcome(queue.DEAD, reason), 0.0)
            return
        if job.destination_kind != "apprise" or job.url_sealed is None:
            await self._record(group, Outcome(queue.DEAD, "the destination has no address"), 0.0)
            return
        try:
            url = self.box.open(job.url_sealed)
        except (SecretsUnavailable, UndecryptableSecret):
            reason = "the Apprise URL cannot be decrypted (ALERTS_SECRET_KEY changed?)"
            await self._record(group, Outcome(queue.DEAD, reason), 0.0)
            return
        message = _summary(group) if job.held else self._message(job)
        await self._attempt(group, partial(self.apprise.send, url, message))

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
            # However the sends in flight go, this one is recorded within `record_interval`.
            asyncio.get_running_loop().call_later(self.config.record_interval, self._flush_later)
        self._finished.extend(queue.Attempt(job, outcome, started, ms) for job in jobs)
        _count(jobs, outcome.status, self.clock())
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
        if len(self._finished) >= self.config.record_batch:
            await self._flush()

    def _flush_later(self) -> None:
        if self._finished:
            task = asyncio.create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _flush(self) -> None:
        while self._finished:
            batch, self._finished = self._finished, []
            # A task of its own, which a stopping worker waits for: the send whose flush this
            # is may be cancelled meanwhile, but the batch is recorded all the same.
            task = asyncio.create_task(self._finish(batch))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
            await asyncio.shield(task)

    async def _finish(self, batch: list[queue.Attempt]) -> None:
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
            self._forget([a.job for a in batch])


def _what(what: int | list[Job]) -> str:
    """What a send task held, for its log line."""
    if isinstance(what, int):
        return f"to chat {what}"
    return "deliveries " + ", ".join(str(j.delivery_id) for j in what)


def _summary(jobs: Sequence[Job]) -> Message:
    return digest(
        [DeliveryWorker._message(j) for j in jobs], title=f"🔕 While muted: {len(jobs)} alerts"
    )


def _apprise_groups(jobs: Sequence[Job]) -> list[list[Job]]:
    """Each job alone, except that a mute's held jobs go together per destination."""
    groups: list[list[Job]] = []
    held: dict[int | None, list[Job]] = {}
    for job in jobs:
        if job.held:
            held.setdefault(job.destination_id, []).append(job)
        else:
            groups.append([job])
    return groups + list(held.values())


def _count(jobs: Sequence[Job], status: str, now: datetime) -> None:
    for job in jobs:
        target = job.destination_kind or "none"
        DELIVERIES.labels(target, status).inc()
        if status == queue.SENT:
            DELIVERY_LATENCY.labels(target).observe((now - job.fired_at).total_seconds())
