"""The delivery worker: claim due deliveries, render, send, record, retry or give up.

Telegram messages to one chat go out in order, inside the rate limits, from one sender task
per chat with something to send; when more than a few alerts for one chat are due at once (a
pump firing dozens of rules, or alerts queued while the chat waits for its turn), they go as
one digest. Apprise destinations are sent concurrently (bounded by the notifier). A running
worker starts each send as it comes and goes on claiming, so a chat waiting for its turn or a
slow webhook holds up no one else; at most `batch` deliveries are in its hands at a time.

Deliveries come in through the outbox alone (`alerts.db.outbox.enqueue`), pending, from the
engine, a rule's test send or the bot, in this process or another: the worker wakes when a
commit of this process enqueued (the database's doorbell) or, on PostgreSQL, when another
process's did (`LISTEN`), and claims what is due; it also scans every `poll_interval`, for
retries, leases of a crashed worker and a notification missed. A delivery is committed and
claimed under a lease before it is sent, and the lease is renewed while the worker holds it;
what was claimed but not sent when the worker stops is given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from alerts.db import queue
from alerts.db.queue import Job, Outcome
from alerts.db.session import Database
from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.config import WorkerConfig
from alerts.delivery.errors import SendFailed
from alerts.delivery.grouping import apprise_groups, chat_messages, mute_summary
from alerts.delivery.grouping import message as render_one
from alerts.delivery.ledger import Ledger
from alerts.delivery.messages import Message
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.upkeep import Upkeep
from alerts.security import SecretBox, SecretsUnavailable, UndecryptableSecret

logger = logging.getLogger("alerts.delivery")

T = TypeVar("T", int, list[Job])  # what a send task holds: a chat, or Apprise deliveries


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = ["DeliveryWorker", "WorkerConfig"]


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
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.ledger = Ledger(db, self.config, clock, rng or random.Random(), recorded=self._forget)
        self.upkeep = Upkeep(
            db,
            self.config,
            clock,
            holding=lambda: self._holding,
            wake=self._wake.set,
            bot_id=telegram.bot.id if telegram is not None else None,
        )
        self._queued: dict[int, list[Job]] = {}  # per chat, for its sender
        self._senders: dict[int, asyncio.Task[None]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        # Deliveries started and not yet recorded (nor left to their lease, see `_forget`).
        self._holding: dict[int, Job] = {}

    @property
    def sends_telegram(self) -> bool:
        """Whether this worker claims Telegram's deliveries (elected, or without a bot)."""
        return self.upkeep.sends_telegram

    @property
    def sent(self) -> int:
        """Deliveries sent so far."""
        return self.ledger.sent

    @property
    def failed(self) -> int:
        """Attempts that failed and are retried."""
        return self.ledger.failed

    @property
    def dead(self) -> int:
        """Deliveries given up."""
        return self.ledger.dead

    async def stop(self) -> None:
        """Finish the current batch and return from `run()`."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Claim and send until stopped. Then the sends that have gone out are finished and
        recorded, and the rest (waiting for their turn, or not started) are given back;
        leases are renewed, and the Telegram sender's lock kept, until all that is done."""
        self.upkeep.start()
        self.db.doorbell.add(self._wake)
        try:
            await self._scan_and_send()
            for task in self._sending:
                if not self._gone_out(task):
                    task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)
        finally:
            self.db.doorbell.discard(self._wake)
            for task in self._sending:
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)
            await asyncio.shield(self._finish_and_release())
            await self.upkeep.close()

    def _gone_out(self, task: asyncio.Task[None]) -> bool:
        telegram = self.telegram is not None and self.telegram.has_gone_out(task)
        return telegram or self.apprise.has_gone_out(task)

    async def _finish_and_release(self) -> None:
        await self.ledger.drain()
        # Recorded sends are out of hand now: what is left never went out (stopped while
        # waiting for its turn, or before its task began).
        unsent = list(self._holding.values())
        self._queued, self._holding = {}, {}
        await asyncio.to_thread(queue.release, self.db, unsent)

    async def _scan_and_send(self) -> None:
        """Claim what is due whenever woken (something enqueued, room freed, stopping) or a
        poll interval after the last claim, while there is room for it."""
        cfg = self.config
        woken, next_scan = True, 0.0
        while not self._stopping.is_set():
            room = cfg.batch - len(self._holding)
            if room > 0 and (woken or time.monotonic() >= next_scan):
                self._wake.clear()  # a ring from now on claims again
                woken = False
                next_scan = time.monotonic() + cfg.poll_interval
                try:
                    jobs = await asyncio.to_thread(
                        queue.claim,
                        self.db,
                        now=self.clock(),
                        lease=cfg.lease,
                        limit=room,
                        telegram=self.upkeep.sends_telegram,
                    )
                except Exception:
                    # Claiming failed (the database refused or is down): nothing was taken,
                    # so nothing is lost; the next scan, a poll interval later, tries again.
                    logger.exception(
                        "claiming deliveries failed; retrying in %.2f s", cfg.poll_interval
                    )
                else:
                    self._start(jobs)
                    # A full batch: there may be more due, claimed as soon as there is room.
                    woken = len(jobs) == room
                    continue
            wait = max(0.0, next_scan - time.monotonic()) if room > 0 else cfg.poll_interval
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # no extra task, unlike wait_for
                    await self._wake.wait()
                    woken = True

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
            await self.ledger.flush()
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
        tasks += [self._spawn(self._send_group, g) for g in apprise_groups(others)]
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
            # batches as it goes, see `Ledger`).
            if len(self._sending) <= 1:
                await self.ledger.flush()
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

    async def _send_chat(self, chat_id: int, jobs: list[Job]) -> None:
        for carried, message in chat_messages(jobs, self.config.flood_threshold):
            if self._stopping.is_set():
                return  # the rest are given back
            await self._attempt(carried, partial(self._telegram, chat_id, message))

    async def _telegram(self, chat_id: int, message: Message) -> None:
        if self.telegram is None:
            raise SendFailed("Telegram delivery is off (TELEGRAM_BOT_TOKEN is not set)", retry=True)
        await self.telegram.send(chat_id, message)

    async def _send_one(self, group: list[Job]) -> None:
        """One Apprise delivery, or a mute's summary of several to one destination."""
        job = group[0]
        if job.destination_id is None:
            await self.ledger.add(group, Outcome(queue.DEAD, "the destination was deleted"), 0.0)
            return
        if not job.destination_enabled:
            reason = f"the destination is disabled ({job.disabled_reason or 'by its owner'})"
            await self.ledger.add(group, Outcome(queue.DEAD, reason), 0.0)
            return
        if job.destination_kind != "apprise" or job.url_sealed is None:
            await self.ledger.add(group, Outcome(queue.DEAD, "the destination has no address"), 0.0)
            return
        try:
            url = self.box.open(job.url_sealed)
        except (SecretsUnavailable, UndecryptableSecret):
            reason = "the Apprise URL cannot be decrypted (ALERTS_SECRET_KEY changed?)"
            await self.ledger.add(group, Outcome(queue.DEAD, reason), 0.0)
            return
        message = mute_summary(group) if job.held else render_one(job)
        await self._attempt(group, partial(self.apprise.send, url, message))

    async def _attempt(self, jobs: Sequence[Job], send: Callable[[], Awaitable[None]]) -> None:
        started = time.perf_counter()
        try:
            await send()
        except SendFailed as exc:
            outcome = self.ledger.after_failure(jobs[0], exc)
        else:
            outcome = Outcome(queue.SENT)
        await self.ledger.add(jobs, outcome, time.perf_counter() - started)


def _what(what: int | list[Job]) -> str:
    """What a send task held, for its log line."""
    if isinstance(what, int):
        return f"to chat {what}"
    return "deliveries " + ", ".join(str(j.delivery_id) for j in what)
