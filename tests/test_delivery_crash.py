"""Crash test: the service is killed with SIGKILL while hundreds of deliveries are pending or
in flight, then restarted: every event reaches its chat at least once, as `alerts run` and as
`alerts engine` + two `alerts worker` alike. The test prints how many were delivered twice (a
crash between sending and recording the send)."""

from __future__ import annotations

import signal
from collections import Counter

from alerts.db.migrate import upgrade
from alerts.db.models import Destination, Rule, User, utcnow
from alerts.db.outbox import record_event
from alerts.db.session import Database
from alerts.simulator import Simulator, SimulatorConfig
from tests.deployments import Deployment, Layout, deployed
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually

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


async def test_sigkill_with_deliveries_in_flight_loses_nothing(layout: Layout) -> None:
    chats = _pending_deliveries(layout.database_url)
    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim, FakeTelegram() as tg:
        env = {
            "XROCKET_WS_URL": sim.url,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.url,
            "ALERTS_DELIVERY_LEASE": "1",
        }
        await Deployment(layout, env).interrupt(signal.SIGKILL, lambda: len(tg.sent) >= 60)
        at_kill = len(tg.sent)

        async with deployed(layout, env) as second:
            delivered = lambda: set(s.chat_id for s in tg.sent) >= set(chats)  # noqa: E731
            await eventually(delivered, timeout=60, message="every event delivered")
    counts = Counter(s.chat_id for s in tg.sent)
    twice = sum(1 for n in counts.values() if n > 1)
    print(f"{layout}: {EVENTS} events; killed after {at_kill} sends; delivered twice: {twice}")
    assert all(counts[c] >= 1 for c in chats)
    # Only sends not yet recorded at the kill can repeat: those of the last 0.1 s (about
    # three at 29/s) and any in flight.
    assert twice <= 10
    second.assert_clean_exit(TOKEN)
