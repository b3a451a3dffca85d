"""Simulator -> engine -> database, with rules created through the API while the engine runs:
crossings across a forced disconnect and across a restart fire exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from alerts.db.migrate import upgrade
from alerts.db.models import Account, Delivery, Event, Rule, Ticker
from alerts.db.session import Database
from alerts.engine import store
from alerts.engine.runner import Engine, EngineConfig
from alerts.feed import Subscription
from alerts.security import SecretBox
from alerts.simulator import Simulator, SimulatorConfig
from api.app import create_app
from tests.api_helpers import ADMIN_TOKEN, GOOD_TOKEN, SECRET_KEY, make_settings
from tests.feed_helpers import eventually, fast_config

BTC = "BTC-USDT"


class World:
    """A simulator, a database, the API (in-process) and engines, in the test's event loop."""

    def __init__(self, sim: Simulator, db: Database, client: httpx.AsyncClient) -> None:
        self.sim, self.db, self.client = sim, db, client
        self.headers: dict[str, str] = {}

    def engine(self) -> Engine:
        config = EngineConfig(
            feed=fast_config(self.sim.url), poll_interval=0.05, flush_interval=0.02
        )
        return Engine(self.db, config, SecretBox(SECRET_KEY))

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.client.post(path, json=body, headers=self.headers)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result

    def events(self, rule_id: int) -> list[Event]:
        with self.db.session() as session:
            return list(session.exec(select(Event).where(Event.rule_id == rule_id)))

    async def subscribed(self, channel: str, symbol: str | None = None) -> None:
        def done() -> bool:
            return any(
                key[0] == channel and (symbol is None or symbol in key)
                for keys in self.sim.subscriptions()
                for key in keys
            )

        await eventually(done, message=f"subscription to {channel} {symbol}")


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    upgrade(database_url)
    db = Database(database_url)
    config = SimulatorConfig(tokens={GOOD_TOKEN: 101}, tick_interval=3600, seed=1)
    async with Simulator(config) as sim:
        sim.set_price(BTC, Decimal(100))
        app = create_app(make_settings(database_url, sim.url), db=db)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            w = World(sim, db, client)
            r = await client.post(
                "/v1/users",
                json={"name": "alice", "telegram_user_id": 555},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            w.headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
            await w.post("/v1/destinations", {"kind": "telegram", "chat_id": 555})
            yield w
    db.dispose()


async def test_rules_fire_once_across_a_disconnect_and_a_restart(world: World) -> None:
    engine = world.engine()
    await engine.start()
    try:
        up = await world.post("/v1/rules", {"kind": "price_cross", "symbol": BTC, "level": "105"})
        await world.subscribed("ticker", BTC)
        await eventually(lambda: up["id"] in engine.evaluator.rules, message="rule armed")

        world.sim.set_price(BTC, Decimal("104"))
        world.sim.set_price(BTC, Decimal("106"))
        await eventually(lambda: len(world.events(up["id"])) == 1, message="first crossing")
        [event] = world.events(up["id"])
        assert event.values["level"] == "105" and event.values["price"] == "106"
        assert event.values["direction"] == "up" and not event.after_gap
        with world.db.session() as session:
            rule = session.get(Rule, up["id"])
            assert rule is not None and not rule.enabled and rule.fire_count == 1
            [delivery] = session.exec(select(Delivery).where(Delivery.event_id == event.id))
            assert delivery.status == "pending"

        # A crossing while the connection is down fires on the first price after it.
        gap = await world.post(
            "/v1/rules", {"kind": "price_cross", "symbol": BTC, "level": "110", "direction": "up"}
        )
        await eventually(lambda: gap["id"] in engine.evaluator.rules, message="rule armed")
        world.sim.close_on_accept = True
        await world.sim.drop_connections()
        world.sim.set_price(BTC, Decimal("112"))  # nobody is connected to see it
        world.sim.close_on_accept = False
        await eventually(lambda: len(world.events(gap["id"])) == 1, message="crossing in gap")
        assert world.events(gap["id"])[0].after_gap
        assert engine.public.state.reconnects >= 1

        restart = await world.post(
            "/v1/rules", {"kind": "price_cross", "symbol": BTC, "level": "120", "direction": "up"}
        )
        await eventually(lambda: restart["id"] in engine.evaluator.rules, message="rule armed")
    finally:
        await engine.stop()

    # While the engine is stopped the price crosses 120; the next engine notices.
    with world.db.session() as session:
        row = session.get(Ticker, BTC)
        assert row is not None and row.last == Decimal("112")  # persisted before stopping
    world.sim.set_price(BTC, Decimal("121"))
    engine = world.engine()
    await engine.start()
    try:
        await eventually(lambda: len(world.events(restart["id"])) == 1, message="after restart")
        assert world.events(restart["id"])[0].after_gap
        world.sim.set_price(BTC, Decimal("119"))
        world.sim.set_price(BTC, Decimal("122"))
        await engine._flush()
    finally:
        await engine.stop()
    for rule in (up, gap, restart):
        assert len(world.events(rule["id"])) == 1  # exactly once each


async def test_live_changes_and_subscriptions_follow_the_rules(world: World) -> None:
    engine = world.engine()
    await engine.start()
    try:
        rule = await world.post(
            "/v1/rules",
            {
                "kind": "price_cross",
                "symbol": "TON-USDT",
                "level": "6",
                "trigger": "every",
                "cooldown_seconds": 1,
            },
        )
        await world.subscribed("ticker", "TON-USDT")
        trades = await world.post(
            "/v1/rules", {"kind": "large_trade", "symbol": "ETH-USDT", "min_quantity": "5"}
        )
        await world.subscribed("trades", "ETH-USDT")
        assert Subscription.trades("ETH-USDT") in engine.public.subscriptions

        r = await world.client.patch(
            f"/v1/rules/{rule['id']}", json={"enabled": False}, headers=world.headers
        )
        assert r.status_code == 200
        await eventually(lambda: rule["id"] not in engine.evaluator.rules, message="paused")
        await eventually(
            lambda: Subscription.ticker("TON-USDT") not in engine.public.subscriptions,
            message="unsubscribed",
        )
        world.sim.set_price("TON-USDT", Decimal("5"))
        world.sim.set_price("TON-USDT", Decimal("7"))

        world.sim.push_trade("ETH-USDT", Decimal("3500"), Decimal("6"))
        await eventually(lambda: len(world.events(trades["id"])) == 1, message="large trade")
        event = world.events(trades["id"])[0]
        assert event.values["quantity"] == "6" and event.values["notional"] == "21000"
        await eventually(
            lambda: Subscription.trades("ETH-USDT") not in engine.public.subscriptions,
            message="a fired once-rule drops its subscription",
        )
        r = await world.client.delete(f"/v1/rules/{rule['id']}", headers=world.headers)
        assert r.status_code == 204
    finally:
        await engine.stop()
    assert world.events(rule["id"]) == []


async def test_account_rules_use_the_private_connection(world: World) -> None:
    account = await world.post("/v1/accounts", {"name": "main", "token": GOOD_TOKEN})
    fills = await world.post("/v1/rules", {"kind": "order", "account_id": account["id"]})
    low = await world.post(
        "/v1/rules",
        {
            "kind": "balance",
            "account_id": account["id"],
            "currency": "USDT",
            "condition": "below",
            "amount": "5000",
        },
    )
    engine = world.engine()
    await engine.start()
    try:
        await world.subscribed("activeOrders")
        await world.subscribed("balances")
        order_id = world.sim.place_order(101, BTC, "BUY", Decimal("100"), Decimal("0.5"))
        world.sim.fill_order(order_id)
        await eventually(lambda: len(world.events(fills["id"])) == 1, message="order filled")
        assert world.events(fills["id"])[0].values["status"] == "FILLED"
        world.sim.set_balance(101, "USDT", Decimal("4000"))
        await eventually(lambda: len(world.events(low["id"])) == 1, message="balance below")
        values = world.events(low["id"])[0].values
        # The fill spent 50 USDT first (0.5 BTC at 100).
        assert (Decimal(values["before"]), values["after"]) == (Decimal("9950"), "4000")
    finally:
        await engine.stop()


async def test_a_refused_token_marks_the_account_and_tells_its_owner_once(world: World) -> None:
    account = await world.post("/v1/accounts", {"name": "main", "token": GOOD_TOKEN})
    await world.post("/v1/rules", {"kind": "order", "account_id": account["id"]})
    world.sim.config.tokens.clear()  # the exchange revokes the token
    engine = world.engine()
    await engine.start()
    try:

        def marked() -> bool:
            with world.db.session() as session:
                row = session.get(Account, account["id"])
                return row is not None and row.status == "rejected"

        await eventually(marked, message="account marked rejected")
        await engine._sync()
        await engine._sync()
        assert account["id"] not in engine.private  # not retried until the token is replaced
        with world.db.session() as session:
            notices = session.exec(select(Event).where(col(Event.kind) == "account")).all()
            assert len(notices) == 1 and notices[0].values["status"] == "rejected"

        # A replaced token is verified by the API, and the engine connects again.
        world.sim.config.tokens["fresh-token-SECRET"] = 101
        r = await world.client.patch(
            f"/v1/accounts/{account['id']}",
            json={"token": "fresh-token-SECRET"},
            headers=world.headers,
        )
        assert r.status_code == 200 and r.json()["status"] == "active"
        await eventually(lambda: account["id"] in engine.private, message="reconnected")
        await world.subscribed("activeOrders")
    finally:
        await engine.stop()


async def test_a_failed_read_of_rule_changes_is_logged_and_read_again(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database refusing the engine's poll for changes once: the rule created meanwhile
    is armed all the same, on the next round."""
    original = store.changes_since
    calls = 0

    def flaky(db: Database, after: int) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("connection refused")
        return original(db, after)

    monkeypatch.setattr(store, "changes_since", flaky)
    engine = world.engine()
    await engine.start()
    try:
        rule = await world.post("/v1/rules", {"kind": "price_cross", "symbol": BTC, "level": "105"})
        await eventually(lambda: rule["id"] in engine.evaluator.rules, message="rule armed")
        await world.subscribed("ticker", BTC)
    finally:
        await engine.stop()
    assert calls >= 3
    assert "following rule changes (after change" in caplog.text
    assert "OSError: connection refused" in caplog.text


async def test_a_rearming_rule_waits_across_a_restart_and_fires_once_re_armed(
    world: World,
) -> None:
    body = {"kind": "price_cross", "symbol": BTC, "level": "105", "trigger": "every"}
    rule = await world.post("/v1/rules", {**body, "cooldown_seconds": 0, "rearm_percent": "2"})
    engine = world.engine()
    await engine.start()
    try:
        await world.subscribed("ticker", BTC)
        await eventually(lambda: rule["id"] in engine.evaluator.rules, message="rule armed")
        world.sim.set_price(BTC, Decimal("106"))
        await eventually(lambda: len(world.events(rule["id"])) == 1, message="first crossing")
        for price in ("104", "105.5", "103"):  # wobbles: not 2% below 105 (102.9) yet
            world.sim.set_price(BTC, Decimal(price))
        await eventually(lambda: engine.evaluator.prices.get((BTC, "last")) == Decimal("103"))
    finally:
        await engine.stop()
    assert len(world.events(rule["id"])) == 1
    with world.db.session() as session:
        row = session.get(Rule, rule["id"])
        assert row is not None and row.state == {"rearm_at": "102.90", "falling": True}

    engine = world.engine()  # still waiting after the restart: 106 does not fire
    await engine.start()
    try:
        await eventually(lambda: rule["id"] in engine.evaluator.rules, message="rule loaded")
        world.sim.set_price(BTC, Decimal("106"))
        await eventually(lambda: engine.evaluator.prices.get((BTC, "last")) == Decimal("106"))
        assert len(world.events(rule["id"])) == 1
        world.sim.set_price(BTC, Decimal("102"))  # 2% below: re-armed (and stored so)
        world.sim.set_price(BTC, Decimal("106"))
        await eventually(lambda: len(world.events(rule["id"])) == 2, message="re-armed crossing")
        await engine._flush()
    finally:
        await engine.stop()
    with world.db.session() as session:
        row = session.get(Rule, rule["id"])
        assert row is not None and row.state == {"rearm_at": "102.90", "falling": True}
