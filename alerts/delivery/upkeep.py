"""A delivery worker's duties besides sending, each a task of its own: renewing the leases of
what it holds, waking on other processes' NOTIFY, pruning history past its retention, and
standing for election as its bot's one Telegram sender."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from datetime import datetime

from alerts.db import queue, retention
from alerts.db.doorbell import listen
from alerts.db.leadership import Leadership, telegram_sender
from alerts.db.session import Database
from alerts.delivery.config import WorkerConfig

logger = logging.getLogger("alerts.delivery")


class Upkeep:
    """Started with the worker's `run`, cancelled when it has given back what it held."""

    def __init__(
        self,
        db: Database,
        config: WorkerConfig,
        clock: Callable[[], datetime],
        *,
        holding: Callable[[], Collection[int]],
        wake: Callable[[], None],
        bot_id: int | None,
    ) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self._holding = holding
        self._wake = wake
        self._bot_id = bot_id
        # Whether the worker claims Telegram's deliveries: always without a bot (they fail as
        # "Telegram is off"), else once elected its bot's sender (or with no election).
        self.sends_telegram = bot_id is None or not config.elect_telegram_sender
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start every duty that applies."""
        cfg, tasks = self.config, self._tasks
        tasks.append(asyncio.create_task(self._renew_leases(), name="worker lease renewal"))
        if cfg.listen and self.db.dialect == "postgresql":
            tasks.append(asyncio.create_task(listen(self.db.url, self._wake), name="LISTEN"))
        if cfg.retention is not None:
            tasks.append(asyncio.create_task(self._prune(), name="pruning old events"))
        if self._bot_id is not None and cfg.elect_telegram_sender:
            lead = self._lead_telegram(self._bot_id)
            tasks.append(asyncio.create_task(lead, name="Telegram sender"))

    async def close(self) -> None:
        """Stop every duty (the Telegram sender's lock is released)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _renew_leases(self) -> None:
        """Every third of a lease, extend the leases of what the worker still holds: a send
        may wait far longer than a lease (Telegram's `retry_after`, a mute's summary)."""
        every = self.config.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(every)
            held = list(self._holding())
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

    async def _prune(self) -> None:
        """Every `prune_interval`, delete what is past its retention, a small batch at a time
        (each its own short transaction, with a pause between, so recording never waits)."""
        cfg = self.config
        assert cfg.retention is not None
        while True:
            await asyncio.sleep(cfg.prune_interval)
            before = self.clock() - cfg.retention
            pruned = 0
            try:
                while True:
                    n = await asyncio.to_thread(retention.prune, self.db, before, cfg.prune_batch)
                    pruned += n
                    if n < cfg.prune_batch:
                        break
                    await asyncio.sleep(cfg.prune_pause)
            except Exception:
                # The database refused or is down: what is left is pruned next time, and
                # nothing else depends on it.
                logger.exception(
                    "pruning events older than %s failed after %d; trying again in %.0f s",
                    before.isoformat(),
                    pruned,
                    cfg.prune_interval,
                )
            if pruned:
                logger.info("pruned %d events older than %s", pruned, before.isoformat())

    async def _lead_telegram(self, bot_id: int) -> None:
        """Be the one worker that sends for this bot whenever no other is: Telegram's limits
        are the bot's, so one process keeps them all (the others send the rest)."""
        role = telegram_sender(bot_id)
        leadership = Leadership(self.db, role=role, interval=self.config.election_interval)
        try:
            while True:
                await leadership.acquire()
                self.sends_telegram = True
                self._wake()  # claim Telegram's deliveries now
                await leadership.lost.wait()
                self.sends_telegram = False
        finally:
            self.sends_telegram = False
            await leadership.release()
