"""Order and balance alerts a trader can trust, over real sockets: the simulator's private
channels and REST API, the engine and a delivery worker, the fake Bot API. Every fill is
reported, once, across cooldowns, dropped connections and restarts; what happened while
away is found in the order history and marked late. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial

import pytest
from pydantic import SecretStr
from sqlmodel import select

from alerts.db.migrate import upgrade
from alerts.db.models import Event, Rule
from alerts.db.session import Database
from alerts.domain.events import Order
from alerts.engine.runner import Engine
from alerts.feed.verify import verify_token
from alerts.security import SecretBox
from alerts.services.accounts import link_account
from alerts.services.schemas import AccountCreate, UserCreate
from alerts.services.telegram_chats import START, link_chat
from alerts.services.users import create_user
from alerts.settings import Settings
from alerts.simulator import Simulator, SimulatorConfig
from alerts.wiring import make_engine, make_worker
from tests.api_helpers import GOOD_TOKEN, SECRET_KEY, make_settings
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually

CHAT = 9001
SIM_USER = 101  # the simulator's user behind GOOD_TOKEN
ORDER_ID = re.compile(r"Order (\d+) ")


@dataclass
class World:
    sim: Simulator
    tg: FakeTelegram
    db: Database
    settings: Settings
    account: int

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Engine]:
        """The engine and a delivery worker, as `alerts run` has them, until the block ends."""
        worker = make_worker(self.settings, self.db)
        worker.config.poll_interval = 0.05
        engine = make_engine(self.settings, self.db)
        engine.config.poll_interval = 0.05
        await engine.start()
        worker_task = asyncio.create_task(worker.run())
        try:
            await eventually(self._subscribed, timeout=5, message="private channels")
            yield engine
        finally:
            await engine.stop()
            await worker.stop()
            await asyncio.gather(worker_task, return_exceptions=True)
            assert worker.telegram is not None
            await worker.telegram.close()

    def _subscribed(self) -> bool:
        keys = {k[0] for ks in self.sim.subscriptions() for k in ks}
        return {"balances", "activeOrders"} <= keys

    def order_alerts(self) -> list[tuple[str, str]]:
        """(order id, status) of each order reported in the chat, digests included."""
        found = []
        for text in self.tg.texts(CHAT):
            for line in text.splitlines():
                match = ORDER_ID.search(line)
                if match:
                    status = next(s for s in _STATUSES if s in line)
                    found.append((match.group(1), status))
        return found

    def late_notes(self) -> list[str]:
        return [line for t in self.tg.texts(CHAT) for line in t.splitlines() if "late:" in line]

    def place(self, quantity: str = "0.01") -> str:
        return self.sim.place_order(SIM_USER, "BTC-USDT", "BUY", Decimal("100"), Decimal(quantity))


_STATUSES = ("PARTIALLY_FILLED", "FILLED", "CANCELED", "REJECTED", "EXPIRED")


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    upgrade(database_url)
    db = Database(database_url)
    config = SimulatorConfig(tokens={GOOD_TOKEN: SIM_USER}, tick_interval=3600)
    async with Simulator(config) as sim, FakeTelegram() as tg:
        settings = make_settings(
            database_url, sim.url, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=tg.url
        )
        with db.session() as session:
            user = create_user(session, UserCreate(name="trader", telegram_user_id=CHAT))
            link_chat(session, user.id, CHAT, name="me", proof=START, now=_now())
            session.commit()
        account = await link_account(
            db,
            user.id,
            AccountCreate(name="main", token=SecretStr(GOOD_TOKEN)),
            box=SecretBox(SECRET_KEY),
            verify=partial(verify_token, sim.url),
        )
        yield World(sim, tg, db, settings, account.id)
    db.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


async def test_the_rules_linking_makes_report_every_event_with_no_cooldown(world: World) -> None:
    with world.db.session() as session:
        rules = session.exec(select(Rule).where(Rule.account_id == world.account)).all()
    assert {(r.kind, r.trigger, r.cooldown_seconds) for r in rules} == {
        ("order", "every", 0),
        ("balance", "every", 0),
    }


async def test_two_fills_50_ms_apart_are_two_alerts_and_a_repeated_push_is_one(
    world: World,
) -> None:
    async with world.running():
        first, second = world.place(), world.place()
        world.sim.fill_order(first)
        await asyncio.sleep(0.05)
        world.sim.fill_order(second)
        await eventually(lambda: len(world.order_alerts()) >= 2, timeout=5, message="two fills")
        # The exchange pushes the second fill again (a resend, or a resubscription).
        order = world.sim._accounts.orders[second]
        push = {"method": "subscription", "params": {"channel": "activeOrders",
                "data": [order.payload()]}}  # fmt: skip
        world.sim.send_raw(json.dumps(push))
        await asyncio.sleep(0.8)
    assert sorted(world.order_alerts()) == sorted([(first, "FILLED"), (second, "FILLED")])


async def test_ten_fills_in_one_push_are_all_reported(world: World) -> None:
    async with world.running():
        ids = [world.place() for _ in range(10)]
        orders = []
        for order_id in ids:
            world.sim._accounts.fill(order_id, None, Decimal("100"), 1_800_000_000_000)
            orders.append(world.sim._accounts.orders[order_id].payload())
        push = {"method": "subscription", "params": {"channel": "activeOrders", "data": orders}}
        world.sim.send_raw(json.dumps(push))
        await eventually(lambda: len(world.order_alerts()) >= 10, timeout=8, message="ten")
    assert sorted(world.order_alerts()) == sorted((i, "FILLED") for i in ids)


async def test_a_fill_while_the_connection_is_down_comes_late_once(world: World) -> None:
    async with world.running():
        world.sim.close_on_accept = True
        await world.sim.drop_connections()
        order = world.place()
        world.sim.fill_order(order)  # nobody is connected to hear it
        await asyncio.sleep(0.2)
        world.sim.close_on_accept = False
        await eventually(lambda: world.order_alerts() != [], timeout=10, message="late fill")
        await asyncio.sleep(0.6)
    assert world.order_alerts() == [(order, "FILLED")]
    [note] = world.late_notes()
    assert "while the connection was down" in note and "UTC" in note
    with world.db.session() as session:
        [event] = session.exec(select(Event).where(Event.kind == "order")).all()
        assert event.after_gap and event.values["late"] == "while the connection was down"


async def test_a_fill_while_the_service_is_stopped_comes_late_once_after_start(
    world: World,
) -> None:
    async with world.running():
        await asyncio.sleep(0.2)
    order = world.place()
    world.sim.fill_order(order)
    async with world.running():
        await eventually(lambda: world.order_alerts() != [], timeout=10, message="late fill")
        await asyncio.sleep(0.6)
    # Another restart right after it was reported: nothing is reported again.
    async with world.running():
        await asyncio.sleep(0.8)
    assert world.order_alerts() == [(order, "FILLED")]
    [note] = world.late_notes()
    assert "while the service was stopped" in note


async def test_a_restart_right_after_reporting_repeats_nothing(world: World) -> None:
    async with world.running():
        order = world.place()
        world.sim.fill_order(order)
        await eventually(lambda: world.order_alerts() != [], timeout=5, message="the fill")
    async with world.running():
        await asyncio.sleep(0.8)
    assert world.order_alerts() == [(order, "FILLED")] and world.late_notes() == []


async def test_a_balance_changed_while_stopped_is_reported_once(world: World) -> None:
    def balance_alerts() -> list[str]:
        return [t for t in world.tg.texts(CHAT) if "USDT balance" in t]

    async with world.running():
        await asyncio.sleep(0.3)  # the first full push is the baseline, not a change
    world.sim.set_balance(SIM_USER, "USDT", Decimal("12345.67"))
    async with world.running():
        await eventually(lambda: balance_alerts() != [], timeout=5, message="balance change")
    async with world.running():
        await asyncio.sleep(0.6)
    [alert] = balance_alerts()
    assert "→ 12345.67" in alert


async def test_partial_fills_report_what_was_executed_since_the_last_report(
    world: World,
) -> None:
    async with world.running():
        order = world.place("1")
        world.sim.fill_order(order, Decimal("0.25"))
        await eventually(lambda: len(world.order_alerts()) == 1, timeout=5, message="first")
        world.sim.fill_order(order, Decimal("0.5"))
        await eventually(lambda: len(world.order_alerts()) == 2, timeout=5, message="second")
        world.sim.fill_order(order)
        await eventually(lambda: len(world.order_alerts()) == 3, timeout=5, message="filled")
    texts = [t for t in world.tg.texts(CHAT) if "Order" in t]
    assert "filled 0.25 more (0.25 of 1 in all)" in texts[0]
    assert "filled 0.5 more (0.75 of 1 in all)" in texts[1]
    assert world.order_alerts()[2] == (order, "FILLED")


async def test_a_bug_reporting_one_missed_order_costs_only_that_one(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with world.running():
        await asyncio.sleep(0.2)
    broken, fine = world.place(), world.place()
    world.sim.fill_order(broken)
    world.sim.fill_order(fine)
    original = Engine._on_late

    def on_late(engine: Engine, order: Order, late: str) -> None:
        if order.order_id == broken:
            raise RuntimeError("a bug")
        original(engine, order, late)

    monkeypatch.setattr(Engine, "_on_late", on_late)
    async with world.running():
        await eventually(lambda: world.order_alerts() != [], timeout=10, message="late fill")
        await asyncio.sleep(0.6)
    assert world.order_alerts() == [(fine, "FILLED")]
    assert f"order {broken} from the history" in caplog.text
