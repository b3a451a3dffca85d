"""Feed staleness as an alert: told once when a followed symbol goes quiet, once when it
recovers, and only the users whose rules follow it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from alerts.db.migrate import upgrade
from alerts.db.models import Delivery, Destination, Event, Rule, User
from alerts.db.session import Database
from alerts.delivery.messages import default_text
from alerts.engine.staleness import RECOVERED, STALE, StalenessWatch, notify


def test_a_quiet_symbol_goes_stale_once_and_recovers_once() -> None:
    watch = StalenessWatch(after=60)
    watch.follow("BTC-USDT", now=0)
    watch.follow("TON-USDT", now=0)
    watch.seen("ETH-USDT", now=1)  # not followed: ignored
    assert watch.check(now=30) == ([], [])
    watch.seen("TON-USDT", now=50)
    assert watch.check(now=61) == (["BTC-USDT"], [])
    assert watch.check(now=90) == ([], [])  # told once
    assert watch.check(now=111) == (["TON-USDT"], [])
    watch.seen("BTC-USDT", now=120)
    assert watch.check(now=121) == ([], ["BTC-USDT"])
    watch.forget("TON-USDT")
    assert watch.check(now=500) == (["BTC-USDT"], [])


def test_notices_reach_the_users_whose_rules_follow_the_symbol(database_url: str) -> None:
    upgrade(database_url)
    db = Database(database_url)
    with db.session() as session:
        alice, bob = User(name="alice", telegram_user_id=11), User(name="bob", telegram_user_id=22)
        session.add_all([alice, bob])
        session.flush()
        assert alice.id and bob.id
        session.add(Destination(user_id=alice.id, kind="telegram", name="t", chat_id=11))
        rules = [
            (alice, "BTC-USDT", True),
            (alice, "BTC-USDT", True),
            (bob, "BTC-USDT", False),
            (bob, "TON-USDT", True),
        ]
        for user, symbol, enabled in rules:
            assert user.id
            session.add(Rule(user_id=user.id, kind="price_cross", name="r", symbol=symbol,
                             params={"level": "1"}, enabled=enabled))  # fmt: skip
        session.commit()
        alice_id = alice.id
    now = datetime.now(UTC)
    assert notify(db, "BTC-USDT", STALE, 300, now) == 1
    assert notify(db, "BTC-USDT", RECOVERED, 0, now) == 1
    with db.session() as session:
        events = session.exec(select(Event)).all()
        assert [(e.user_id, e.kind) for e in events] == [(alice_id, STALE), (alice_id, RECOVERED)]
        assert len(session.exec(select(Delivery)).all()) == 2  # to alice's own chat
        text = default_text(events[0].kind, events[0].values)
        assert text.startswith("No prices for BTC-USDT from the exchange for 300 s")
    db.dispose()


async def test_the_engine_tells_users_when_a_symbol_goes_quiet_and_comes_back(
    database_url: str,
) -> None:
    from decimal import Decimal

    from alerts.engine.runner import Engine, EngineConfig
    from alerts.security import SecretBox
    from alerts.simulator import Simulator, SimulatorConfig
    from tests.feed_helpers import eventually, fast_config

    upgrade(database_url)
    db = Database(database_url)
    with db.session() as session:
        user = User(name="alice", telegram_user_id=11)
        session.add(user)
        session.flush()
        assert user.id
        session.add(Destination(user_id=user.id, kind="telegram", name="t", chat_id=11))
        session.add(Rule(user_id=user.id, kind="price_cross", name="r", symbol="BTC-USDT",
                         params={"symbol": "BTC-USDT", "level": "200"}))  # fmt: skip
        session.commit()

    def kinds() -> list[str]:
        with db.session() as session:
            return [e.kind for e in session.exec(select(Event).order_by(Event.id))]  # type: ignore[arg-type]

    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim:
        sim.set_price("BTC-USDT", Decimal("100"))
        config = EngineConfig(feed=fast_config(sim.url), poll_interval=0.05, symbol_stale_after=0.5)
        engine = Engine(db, config, SecretBox(None))
        await engine.start()
        try:
            await eventually(lambda: kinds() == [STALE], timeout=5, message="stale notice")
            sim.set_price("BTC-USDT", Decimal("101"))
            await eventually(lambda: kinds() == [STALE, RECOVERED], timeout=5, message="recovery")
        finally:
            await engine.stop()
    db.dispose()
