"""The delivery worker: claim due deliveries, group, send, record, retry or give up, in stages
of their own: `claiming` (what is due, when woken or every `poll_interval`), `grouping` (what
goes as one message: a digest when many alerts for one chat are due, a mute's summary),
`notifiers` (one per destination kind, inside its limits), `ledger` (outcomes, recorded in
small batches) and `upkeep` (lease renewal, LISTEN, pruning, the Telegram sender's election).

Deliveries come in through the outbox alone (`alerts.db.outbox.enqueue`). What keeps an order
(a Telegram chat's messages) goes through one sender task per chat, one message at a time;
everything else goes at once. A running worker starts each send as it comes and goes on
claiming, so a chat waiting for its turn or a slow webhook holds up no one else; at most
`batch` deliveries are in its hands, under leases renewed while it holds them; what was
claimed but not sent when it stops is given back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from alerts.db import queue
from alerts.db.queue import Job, Outcome
from alerts.db.session import Database
from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.claiming import Claimer
from alerts.delivery.config import WorkerConfig
from alerts.delivery.errors import SendFailed
from alerts.delivery.grouping import at_once_groups, chat_messages, mute_summary
from alerts.delivery.grouping import message as render_one
from alerts.delivery.ledger import Ledger
from alerts.delivery.notifiers import registry
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.upkeep import Upkeep
from alerts.delivery.webhook import WebhookNotifier
from alerts.metrics import Metrics
from alerts.security import SecretBox

logger = logging.getLogger("alerts.delivery")

# What keeps its messages in order: a destination kind and, say, a Telegram chat.
Order = tuple[str, Hashable]
T = TypeVar("T", Order, list[Job])  # what a send task holds: an order, or deliveries at once


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
        webhooks: WebhookNotifier | None = None,
        config: WorkerConfig | None = None,
        clock: Callable[[], datetime] = _now,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.box = box
        self.telegram = telegram
        self.apprise = apprise or AppriseNotifier()
        self.webhooks = webhooks or WebhookNotifier()
        self.config = config or WorkerConfig()
        self.clock = clock
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.metrics = metrics or Metrics()
        self.ledger = Ledger(
            db,
            self.config,
            clock,
            rng or random.Random(),
            recorded=self._forget,
            metrics=self.metrics,
        )
        self.upkeep = Upkeep(
            db,
            self.config,
            clock,
            holding=lambda: self._holding,
            wake=self._wake.set,
            bot_id=telegram.bot.id if telegram is not None else None,
        )
        self.notifiers = registry(telegram, self.apprise, self.webhooks, box)
        self.claimer = Claimer(
            db,
            self.config,
            clock,
            wake=self._wake,
            stopping=self._stopping,
            room=lambda: self.config.batch - len(self._holding),
            telegram=lambda: self.upkeep.sends_telegram,
            start=self._start,
        )
        self._queued: dict[Order, list[Job]] = {}  # per order (a chat), for its sender
        self._senders: dict[Order, asyncio.Task[None]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        # Deliveries started and not yet recorded (nor left to their lease, see `_forget`).
        self._holding: dict[int, Job] = {}

    @property
    def sends_telegram(self) -> bool:
        """Whether this worker claims Telegram's deliveries (elected, or without a bot)."""
        return self.upkeep.sends_telegram

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
            await self.claimer.run()
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
        return any(n.has_gone_out(task) for n in self.notifiers.values())

    async def _finish_and_release(self) -> None:
        await self.ledger.drain()
        # Recorded sends are out of hand now: what is left never went out (stopped while
        # waiting for its turn, or before its task began).
        unsent = list(self._holding.values())
        self._queued, self._holding = {}, {}
        await asyncio.to_thread(queue.release, self.db, unsent)

    async def run_once(self) -> bool:
        """Claim one batch of due deliveries (oldest first), send it and record the outcomes;
        False when nothing was due."""
        jobs = await self.claimer.claim(self.config.batch)
        tasks = self._start(jobs)
        try:
            await asyncio.gather(*tasks)
        finally:
            await self.ledger.flush()
        return bool(jobs)

    def _start(self, jobs: list[Job]) -> list[asyncio.Task[None]]:
        """Start sending `jobs`: those that keep an order (a Telegram chat's) to its sender
        (started if it has none), the rest each in a task of its own (a mute's summary: one
        per destination); returns the tasks that send them."""
        self._holding.update((j.delivery_id, j) for j in jobs)
        ordered: dict[Order, list[Job]] = {}
        others: list[Job] = []
        for job in jobs:
            notifier = self.notifiers.get(job.destination_kind or "")
            key = notifier.in_order(job) if notifier is not None else None
            if key is None:
                others.append(job)
            else:
                ordered.setdefault((job.destination_kind or "", key), []).append(job)
        tasks: list[asyncio.Task[None]] = []
        for order, group in ordered.items():
            self._queued.setdefault(order, []).extend(group)
            sender = self._senders.get(order)
            if sender is None:
                sender = self._senders[order] = self._spawn(self._sender, order)
            tasks.append(sender)
        groups = at_once_groups(others, self._summarised)
        return tasks + [self._spawn(self._send_group, g) for g in groups]

    def _summarised(self, job: Job) -> bool:
        notifier = self.notifiers.get(job.destination_kind or "")
        return notifier is None or notifier.groups_held

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

    async def _sender(self, order: Order) -> None:
        """Send what is queued for one order (a chat), in order, until nothing is (or the
        worker stops)."""
        jobs: list[Job] = []
        try:
            while order in self._queued and not self._stopping.is_set():
                jobs = self._queued.pop(order)
                await self._send_ordered(jobs)
        except Exception:  # logged by `_settled`; not on cancellation (`stop` gives back)
            self._forget(jobs + self._queued.pop(order, []))
            raise
        finally:
            del self._senders[order]

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

    async def _send_ordered(self, jobs: list[Job]) -> None:
        """One order's deliveries due at once: one by one, or a digest (see `grouping`)."""
        notifier = self.notifiers[jobs[0].destination_kind or ""]
        for carried, message in chat_messages(jobs, self.config.flood_threshold):
            if self._stopping.is_set():
                return  # the rest are given back
            await self._attempt(carried, partial(notifier.send, carried[0], message))

    async def _send_one(self, group: list[Job]) -> None:
        """One delivery, or a mute's summary of several to one destination."""
        job = group[0]
        notifier = self.notifiers.get(job.destination_kind or "")
        reason = None
        if job.destination_id is None:
            reason = "the destination was deleted"
        elif not job.destination_enabled:
            reason = f"the destination is disabled ({job.disabled_reason or 'by its owner'})"
        elif notifier is None:
            reason = f"no way to send to a {job.destination_kind!r} destination"
        if reason is not None or notifier is None:
            await self.ledger.add(group, Outcome(queue.DEAD, reason), 0.0)
            return
        message = mute_summary(group) if job.held else render_one(job)
        await self._attempt(group, partial(notifier.send, job, message))

    async def _attempt(self, jobs: Sequence[Job], send: Callable[[], Awaitable[None]]) -> None:
        started = time.perf_counter()
        try:
            await send()
        except SendFailed as exc:
            outcome = self.ledger.after_failure(jobs[0], exc)
        else:
            outcome = Outcome(queue.SENT)
        await self.ledger.add(jobs, outcome, time.perf_counter() - started)


def _what(what: Order | list[Job]) -> str:
    """What a send task held, for its log line ("to telegram 4242", "deliveries 7, 8")."""
    if isinstance(what, tuple):
        return f"to {what[0]} {what[1]}"  # a chat, by its destination kind
    return "deliveries " + ", ".join(str(j.delivery_id) for j in what)
