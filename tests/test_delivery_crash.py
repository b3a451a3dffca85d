"""Crash test: `alerts run` is killed with SIGKILL while hundreds of deliveries are pending or
in flight, then restarted: every event reaches its chat at least once. The test prints how
many were delivered twice (a crash between sending and recording the send)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

from alerts.db.migrate import upgrade
from alerts.db.models import Destination, Rule, User, utcnow
from alerts.db.outbox import record_event
from alerts.db.session import Database
from alerts.simulator import Simulator, SimulatorConfig
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually
from tests.test_cli import free_port

EVENTS = 300


def _pending_deliveries(database_url: str) -> list[int]:
    upgrade(database_url)
    db = Database(database_url)
    chats = []
    with db.session() as session:
        user = User(name="crash")
        session.add(user)
        session.flush()
        assert user.id is not None
        rule = Rule(user_id=user.id, kind="spread", name="r", symbol="BTC-USDT", params={})
        session.add(rule)
        session.flush()
        for i in range(EVENTS):
            chat = 10_000 + i
            destination = Destination(user_id=user.id, kind="telegram", name="c", chat_id=chat)
            session.add(destination)
            session.flush()
            assert destination.id is not None
            record_event(
                session,
                user_id=user.id,
                rule_id=rule.id,
                rule_name="r",
                kind="spread",
                symbol="BTC-USDT",
                values={"symbol": "BTC-USDT", "percent": str(i)},
                destination_ids=[destination.id],
                now=utcnow(),
            )
            chats.append(chat)
        session.commit()
    db.dispose()
    return chats


async def test_sigkill_with_deliveries_in_flight_loses_nothing(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/crash.db"
    chats = _pending_deliveries(database_url)
    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim, FakeTelegram() as tg:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "XROCKET_WS_URL": sim.url,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.url,
            "ALERTS_DELIVERY_LEASE": "1",
        }

        async def start() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "alerts.cli", "run", "--port", str(free_port()),
                env=env, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip

        first = await start()
        await eventually(lambda: len(tg.sent) >= 60, timeout=30, message="sending started")
        first.send_signal(signal.SIGKILL)
        await first.wait()
        at_kill = len(tg.sent)

        second = await start()
        try:
            delivered = lambda: set(s.chat_id for s in tg.sent) >= set(chats)  # noqa: E731
            await eventually(delivered, timeout=60, message="every event delivered")
        finally:
            second.send_signal(signal.SIGINT)
            await second.wait()
    counts = Counter(s.chat_id for s in tg.sent)
    twice = sum(1 for n in counts.values() if n > 1)
    print(f"{EVENTS} events; killed after {at_kill} sends; delivered twice: {twice}")
    assert all(counts[c] >= 1 for c in chats)
    # Only sends not yet recorded at the kill can repeat: those of the last 0.1 s (about
    # three at 29/s) and any in flight.
    assert twice <= 10
    assert second.returncode == 0
