"""Graceful shutdown: SIGTERM to `alerts run` with hundreds of deliveries pending or in
flight. It exits promptly and cleanly, having recorded what it sent and released what it had
claimed; a restart sends the rest at once (not after the 60 s lease), none of it twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from sqlmodel import col, select

from alerts.db.models import Delivery
from alerts.db.session import Database
from alerts.simulator import Simulator, SimulatorConfig
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually
from tests.test_cli import free_port
from tests.test_delivery_crash import _pending_deliveries


async def test_sigterm_with_deliveries_in_flight_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path}/shutdown.db"
    chats = _pending_deliveries(database_url)
    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim, FakeTelegram() as tg:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "XROCKET_WS_URL": sim.url,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.url,
        }

        async def start() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "alerts.cli", "run", "--port", str(free_port()),
                env=env, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip

        first = await start()
        await eventually(lambda: len(tg.sent) >= 60, timeout=30, message="sending started")
        first.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        _, err = await asyncio.wait_for(first.communicate(), 30)
        took = time.monotonic() - stopped
        print(f"stopped {took:.2f} s after SIGTERM, {len(tg.sent)} sent")
        # Sends still waiting for their turn (30/s) are given back, not waited for.
        assert took < 5.0
        assert first.returncode == 0, err.decode()[-2000:]
        assert b"Traceback" not in err

        db = Database(database_url)
        with db.session() as session:
            leased = session.exec(select(Delivery).where(col(Delivery.lease_until).is_not(None)))
            assert [d.id for d in leased if d.status not in ("sent", "dead")] == []
            sent = session.exec(select(Delivery).where(Delivery.status == "sent")).all()
            assert len(sent) == len(tg.sent)  # every send recorded before the exit
        db.dispose()

        second = await start()
        try:
            restarted = time.monotonic()
            delivered = lambda: set(s.chat_id for s in tg.sent) >= set(chats)  # noqa: E731
            await eventually(delivered, timeout=40, message="every event delivered")
            print(f"the rest delivered {time.monotonic() - restarted:.1f} s after the restart")
        finally:
            second.send_signal(signal.SIGTERM)
            await second.communicate()
    counts = Counter(s.chat_id for s in tg.sent)
    assert all(counts[c] == 1 for c in chats), "nothing sent twice"
    assert second.returncode == 0
