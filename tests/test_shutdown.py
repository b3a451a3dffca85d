"""Graceful shutdown: SIGTERM to the service (`alerts run`, or `alerts engine` + two
`alerts worker`) with hundreds of deliveries pending or in flight. Every process exits
promptly and cleanly, having recorded what it sent and released what it had claimed; a
restart sends the rest at once (not after the 60 s lease), none of it twice."""

from __future__ import annotations

import signal
import time
from collections import Counter

from sqlmodel import col, select

from alerts.db.models import Delivery
from alerts.db.session import Database
from alerts.simulator import Simulator, SimulatorConfig
from tests.deployments import Deployment, Layout, deployed
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually
from tests.test_delivery_crash import _pending_deliveries


async def test_sigterm_with_deliveries_in_flight_loses_and_repeats_nothing(
    layout: Layout,
) -> None:
    chats = _pending_deliveries(layout.database_url)
    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim, FakeTelegram() as tg:
        env = {"XROCKET_WS_URL": sim.url, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": tg.url}
        first = Deployment(layout, env)
        took = await first.interrupt(signal.SIGTERM, lambda: len(tg.sent) >= 60)
        print(f"{layout}: stopped {took:.2f} s after SIGTERM, {len(tg.sent)} sent")
        # Sends still waiting for their turn (30/s) are given back, not waited for.
        assert took < 5.0
        first.assert_clean_exit(TOKEN)

        db = Database(layout.database_url)
        with db.session() as session:
            leased = session.exec(select(Delivery).where(col(Delivery.lease_until).is_not(None)))
            assert [d.id for d in leased if d.status not in ("sent", "dead")] == []
            sent = session.exec(select(Delivery).where(Delivery.status == "sent")).all()
            assert len(sent) == len(tg.sent)  # every send recorded before the exit
        db.dispose()

        async with deployed(layout, env) as second:
            restarted = time.monotonic()
            delivered = lambda: set(s.chat_id for s in tg.sent) >= set(chats)  # noqa: E731
            await eventually(delivered, timeout=40, message="every event delivered")
            print(f"the rest delivered {time.monotonic() - restarted:.1f} s after the restart")
    counts = Counter(s.chat_id for s in tg.sent)
    assert all(counts[c] == 1 for c in chats), "nothing sent twice"
    second.assert_clean_exit(TOKEN)
