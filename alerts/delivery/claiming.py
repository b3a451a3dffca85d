"""The claim stage: take what is due from the queue, under a lease, whenever woken (something
was enqueued, room was freed, the worker stops) or a poll interval after the last claim, as
long as the worker has room for more."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from alerts.db import queue
from alerts.db.queue import Job
from alerts.db.session import Database
from alerts.delivery.config import WorkerConfig

logger = logging.getLogger("alerts.delivery")


class Claimer:
    """Claims for one worker and hands each batch to `start`."""

    def __init__(
        self,
        db: Database,
        config: WorkerConfig,
        clock: Callable[[], datetime],
        *,
        wake: asyncio.Event,
        stopping: asyncio.Event,
        room: Callable[[], int],
        telegram: Callable[[], bool],
        start: Callable[[list[Job]], object],
    ) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self._wake = wake
        self._stopping = stopping
        self._room = room  # how many more deliveries the worker may hold
        self._telegram = telegram  # whether it may take Telegram's (its bot's sender)
        self._start = start

    async def claim(self, limit: int, *, telegram: bool = True) -> list[Job]:
        """Up to `limit` due deliveries, leased to this worker."""
        cfg = self.config
        return await asyncio.to_thread(
            queue.claim,
            self.db,
            now=self.clock(),
            lease=cfg.lease,
            limit=limit,
            telegram=telegram,
        )

    async def run(self) -> None:
        """Claim until the worker stops."""
        cfg = self.config
        woken, next_scan = True, 0.0
        while not self._stopping.is_set():
            room = self._room()
            if room > 0 and (woken or time.monotonic() >= next_scan):
                self._wake.clear()  # a ring from now on claims again
                woken = False
                next_scan = time.monotonic() + cfg.poll_interval
                try:
                    jobs = await self.claim(room, telegram=self._telegram())
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
