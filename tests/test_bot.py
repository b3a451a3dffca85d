"""The Telegram bot, driven through a fake Bot API server over real HTTP: fake users send every
command (valid and invalid) and press every button; the replies, the rules in the database,
and an alert from a simulated price crossing reaching the user's chat are what is checked."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlmodel import col, select

from alerts.bot.app import BotRunner
from alerts.bot.middleware import Throttle
from alerts.db.migrate import upgrade
from alerts.db.models import Account, Delivery, Destination, Rule, SymbolStatus, Ticker, User
from alerts.db.session import Database
from alerts.engine.runner import Engine
from alerts.simulator import Simulator, SimulatorConfig
from alerts.wiring import make_bot, make_engine, make_worker
from tests.api_helpers import BLOCKED_TOKEN, GOOD_TOKEN, make_settings
from tests.fake_telegram import TOKEN, FakeTelegram, Sent
from tests.feed_helpers import eventually
from tests.test_cli import free_port

ALICE, BOB = 4001, 4002
GROUP = -100777


@dataclass
class World:
    tg: FakeTelegram
    db: Database
    sim: Simulator
    bot: BotRunner

    async def ask(self, user: int, text: str, chat: int | None = None) -> Sent:
        """`user` sends `text`; the bot's reply in that chat."""
        return await self.tg.ask(user, text, chat)

    async def press(self, user: int, sent: Sent, button: str) -> str:
        """`user` presses a button; the text the bot answered the callback with."""
        query = self.tg.press(user, sent, button)

        def answers() -> list[dict[str, str]]:
            calls = self.tg.called("answerCallbackQuery")
            return [c for c in calls if c["callback_query_id"] == query]

        await eventually(lambda: bool(answers()), message=f"answer to {button}")
        return str(answers()[0].get("text", ""))

    def rules(self, telegram_user: int) -> list[Rule]:
        with self.db.session() as session:
            user_id = session.exec(
                select(User.id).where(User.telegram_user_id == telegram_user)
            ).one()
            return list(
                session.exec(select(Rule).where(Rule.user_id == user_id).order_by(col(Rule.id)))
            )


@contextlib.asynccontextmanager
async def pipeline(world: World, database_url: str) -> AsyncIterator[Engine]:
    """The engine and a delivery worker beside the bot, as in `alerts run`."""
    settings = make_settings(
        database_url, world.sim.url, TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_URL=world.tg.url
    )
    worker = make_worker(settings, world.db)
    engine = make_engine(settings, world.db)
    await engine.start()
    worker_task = asyncio.create_task(worker.run())
    try:
        yield engine
    finally:
        await worker.stop()
        await asyncio.gather(worker_task, return_exceptions=True)
        await engine.stop()
        if worker.telegram is not None:
            await worker.telegram.close()


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    upgrade(database_url)
    db = Database(database_url)
    config = SimulatorConfig(
        tokens={GOOD_TOKEN: 101}, blocked_tokens=frozenset({BLOCKED_TOKEN}), tick_interval=3600
    )
    async with Simulator(config) as sim, FakeTelegram() as tg:
        settings = make_settings(
            database_url,
            sim.url,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=tg.url,
            ALERTS_MAX_RULES_PER_USER=12,
            ALERTS_BOT_COMMANDS_PER_MINUTE=1000,
        )
        bot = make_bot(settings, db)
        assert bot is not None
        bot.polling_timeout = 1
        task = asyncio.create_task(bot.run())
        await asyncio.wait_for(bot.up.wait(), 10)
        try:
            yield World(tg, db, sim, bot)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            db.dispose()


async def test_start_registers_the_user_and_links_the_private_chat(world: World) -> None:
    reply = await world.ask(ALICE, "/start")
    assert reply.text.startswith("Welcome, user4001!") and "/alert BTC-USDT above" in reply.text
    assert reply.parse_mode == "HTML"
    with world.db.session() as session:
        user = session.exec(select(User).where(User.telegram_user_id == ALICE)).one()
        chats = session.exec(select(Destination).where(Destination.user_id == user.id)).all()
        assert [(d.kind, d.chat_id, d.enabled) for d in chats] == [("telegram", ALICE, True)]
    assert (await world.ask(ALICE, "/start")).text.startswith("Welcome back")
    help_text = (await world.ask(ALICE, "/help")).text
    assert "/mute 1h" in help_text and "/quiet 23:00-07:30 Europe/Berlin" in help_text
    assert "I don't know /nope" in (await world.ask(ALICE, "/nope")).text

    # In a group, only an administrator's /start makes it a destination.
    refused = await world.ask(BOB, "/start", chat=GROUP)
    assert "Only an administrator of this chat" in refused.text
    world.tg.admins[GROUP] = {ALICE}
    group = await world.ask(ALICE, "/start", chat=GROUP)
    assert f"{GROUP}" in group.text
    with world.db.session() as session:
        [linked] = session.exec(select(Destination).where(Destination.chat_id == GROUP)).all()
        alice = session.exec(select(User).where(User.telegram_user_id == ALICE)).one()
        assert linked.user_id == alice.id and linked.enabled


async def test_alert_commands_create_list_pause_and_delete_rules(world: World) -> None:
    reply = await world.ask(ALICE, "/alert btc-usdt above 70000")
    [rule] = world.rules(ALICE)
    assert (rule.kind, rule.symbol, rule.params["level"], rule.params["direction"]) == (
        "price_cross", "BTC-USDT", "70000", "up",
    )  # fmt: skip
    assert f"Alert <b>#{rule.id}</b>: BTC-USDT crosses 70000 up" in reply.text
    assert reply.buttons() == {"Undo": f"r:undo:{rule.id}:0"}

    assert await world.press(ALICE, reply, "Undo") == f"Deleted alert #{rule.id}."
    assert world.rules(ALICE) == []
    assert reply.text == f"Undone: alert #{rule.id} deleted."

    await world.ask(ALICE, "/alert TON-USDT below 2.5")
    await world.ask(ALICE, "/alert TON-USDT change 5% 1h")
    down, change = world.rules(ALICE)
    assert down.params["direction"] == "down" and down.params["level"] == "2.5"
    assert change.kind == "percent_change" and change.params["window_seconds"] == 3600
    assert change.params["percent"] == "5"

    listing = await world.ask(ALICE, "/alerts")
    assert f"#{down.id}" in listing.text and "TON-USDT moves 5% in 3600s" in listing.text
    assert set(listing.buttons()) == {
        f"⏸ Pause #{down.id}", f"🗑 Delete #{down.id}",
        f"⏸ Pause #{change.id}", f"🗑 Delete #{change.id}",
    }  # fmt: skip
    assert await world.press(ALICE, listing, f"⏸ Pause #{down.id}") == f"Paused alert #{down.id}."
    assert not world.rules(ALICE)[0].enabled
    assert "paused" in listing.text  # the list was edited in place, with the other button
    assert await world.press(ALICE, listing, f"▶ Resume #{down.id}") == f"Resumed alert #{down.id}."
    assert world.rules(ALICE)[0].enabled
    deleted = await world.press(ALICE, listing, f"🗑 Delete #{change.id}")
    assert deleted == f"Deleted alert #{change.id}."
    assert f"#{change.id}" not in listing.text
    assert [r.id for r in world.rules(ALICE)] == [down.id]

    assert (await world.ask(ALICE, f"/delete {down.id}")).text == f"Deleted alert #{down.id}."
    assert "no alert with that number" in (await world.ask(ALICE, f"/delete {down.id}")).text
    assert world.rules(ALICE) == []
    assert "No alerts yet" in (await world.ask(ALICE, "/alerts")).text


BAD_INPUT = [
    ("/alert", "say which symbol"),
    ("/alert BTC-USDT above", "say which symbol"),
    ("/alert BTC-USDT over 5", "use above, below or change"),
    ("/alert BTC-USDT above lots", "level"),
    ("/alert BTC-USDT above -5", "level"),
    ("/alert BTC-USDT above ١٢٣", "level"),
    ("/alert B@D above 5", "symbol"),
    ("/alert BTC-USDT change 5 1h", "by how much"),
    ("/alert BTC-USDT change 5% soon", "not a duration"),
    ("/delete x", "give the alert's number"),
    ("/delete 99999999999999999999999", "give the alert's number"),
    ("/delete ²", "give the alert's number"),
    ("/delete ١٢", "give the alert's number"),
    ("/mute", "not a duration"),
    ("/mute 90d", "at most 30 days"),
    ("/quiet soon", "give the hours as start-end"),
    ("/quiet 25:00-07:00", "'25:00' is not a time of day"),
    ("/quiet 23:00-07:30 Mars/Olympus", "'Mars/Olympus' is not a time zone"),
    ("/quiet 23:00-23:00", "the same time"),
    ("/price", "Which symbol?"),
    ("/orders maybe", "say on or off"),
]


async def test_bad_input_gets_a_short_explanation(world: World) -> None:
    for command, complaint in BAD_INPUT:
        reply = await world.ask(BOB, command)
        assert complaint in reply.text, (command, reply.text)
    assert world.rules(BOB) == []


async def test_rule_limit_and_command_rate_limit(world: World) -> None:
    for level in range(12):
        await world.ask(BOB, f"/alert BTC-USDT above {70000 + level}")
    assert len(world.rules(BOB)) == 12
    reply = await world.ask(BOB, "/alert BTC-USDT above 1")
    assert "You have 12 alerts, the most allowed" in reply.text and len(world.rules(BOB)) == 12

    ids = [r.id for r in world.rules(BOB)]
    listing = await world.ask(BOB, "/alerts")  # ten a page
    assert [f"<b>#{i}</b>" in listing.text for i in ids] == [True] * 10 + [False] * 2
    assert "Next »" in listing.buttons() and "« First" not in listing.buttons()
    await world.press(BOB, listing, "Next »")
    assert [f"<b>#{i}</b>" in listing.text for i in ids] == [False] * 10 + [True] * 2
    assert "« First" in listing.buttons() and "Next »" not in listing.buttons()

    throttle = world.bot.dispatcher.message.outer_middleware._middlewares[0]
    assert isinstance(throttle, Throttle)
    throttle.per_minute = 15
    # 15 commands and presses so far this minute: the next is refused once, then dropped.
    assert "Slow down: at most 15 commands a minute" in (await world.ask(BOB, "/help")).text
    before = len(world.tg.sent)
    world.tg.say(BOB, "/help")
    await asyncio.sleep(0.3)
    assert len(world.tg.sent) == before


async def test_price_answers_from_the_latest_ticker(world: World) -> None:
    assert "No price for BTC-USDT yet" in (await world.ask(ALICE, "/price BTC-USDT")).text
    with world.db.session() as session:
        session.add(Ticker(symbol="BTC-USDT", last=Decimal("70123.5"), bid=Decimal("70123")))
        session.commit()
    reply = await world.ask(ALICE, "/price btc-usdt")
    assert "<b>BTC-USDT</b>" in reply.text and "Last: <code>70123.5</code>" in reply.text
    assert "Bid: <code>70123</code>" in reply.text and "Ask" not in reply.text


async def test_connect_deletes_the_token_message_and_links_the_account(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    message_id = world.tg.say(ALICE, f"/connect {BLOCKED_TOKEN}")
    await eventually(lambda: bool(world.tg.texts(ALICE)), message="reply")
    assert (
        "Not linked: the exchange says the user of this token is blocked"
        in world.tg.texts(ALICE)[0]
    )
    assert {"chat_id": str(ALICE), "message_id": str(message_id)} in world.tg.called(
        "deleteMessage"
    )

    reply = await world.ask(ALICE, f"/connect {GOOD_TOKEN}")
    assert "xRocket account linked" in reply.text and "Order notifications: on" in reply.text
    assert len(world.tg.called("deleteMessage")) == 2
    with world.db.session() as session:
        [account] = session.exec(select(Account)).all()
        assert GOOD_TOKEN not in account.token_sealed and account.notify_orders
    kinds = {r.kind: r.enabled for r in world.rules(ALICE)}
    assert kinds == {"order": True, "balance": True}

    assert (await world.ask(ALICE, "/orders off")).text == "Orders notifications are off."
    assert {r.kind: r.enabled for r in world.rules(ALICE)} == {"order": False, "balance": True}
    await world.ask(ALICE, "/balances off")
    assert not any(r.enabled for r in world.rules(ALICE))
    assert "Link your xRocket account first" in (await world.ask(BOB, "/orders on")).text

    group = await world.ask(BOB, f"/connect {GOOD_TOKEN}", chat=GROUP)
    assert "only in a private chat" in group.text
    assert world.tg.called("deleteMessage")[-1]["chat_id"] == str(GROUP)

    replies = " ".join(s.text for s in world.tg.sent)
    assert GOOD_TOKEN not in replies and BLOCKED_TOKEN not in replies
    logged = [f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    leaks = [line for line in logged if any(t in line for t in (GOOD_TOKEN, BLOCKED_TOKEN, TOKEN))]
    assert leaks == []


async def test_a_crossing_reaches_the_user_and_its_buttons_work(
    world: World, database_url: str
) -> None:
    world.sim.set_price("BTC-USDT", Decimal("69990"))
    async with pipeline(world, database_url) as engine:
        await world.ask(ALICE, "/start")
        await world.ask(ALICE, "/alert BTC-USDT above 70000")
        [rule] = world.rules(ALICE)
        await eventually(lambda: rule.id in engine.evaluator.rules, message="rule armed")
        await eventually(
            lambda: Decimal("69990") in engine.evaluator.prices.values(), message="first price"
        )
        world.sim.set_price("BTC-USDT", Decimal("70010"))
        await eventually(lambda: len(world.tg.texts(ALICE)) == 3, timeout=10, message="alert")
        alert = world.tg.sent[-1]
        assert "BTC-USDT" in alert.text and "70010" in alert.text and "70000" in alert.text

        answer = await world.press(ALICE, alert, "Snooze 1 h")
        assert answer.startswith("Snoozed until")
        [snoozed] = world.rules(ALICE)
        assert snoozed.snoozed_until is not None
        assert snoozed.snoozed_until > datetime.now(UTC) + timedelta(minutes=59)
        assert await world.press(BOB, alert, "Disable rule") == "This alert no longer exists."
        assert "is off" in await world.press(ALICE, alert, "Disable rule")
        assert not world.rules(ALICE)[0].enabled


async def test_mute_holds_alerts_and_unmute_sends_one_summary(
    world: World, database_url: str
) -> None:
    world.sim.set_price("BTC-USDT", Decimal("100"))
    async with pipeline(world, database_url) as engine:
        await world.ask(ALICE, "/start")
        reply = await world.ask(ALICE, "/mute 2h")
        assert reply.text.startswith("🔕 Muted until")
        with world.db.session() as session:
            user = session.exec(select(User).where(User.telegram_user_id == ALICE)).one()
            assert user.muted_until is not None
            assert user.muted_until > datetime.now(UTC) + timedelta(minutes=119)
        await world.ask(ALICE, "/alert BTC-USDT above 101")
        await world.ask(ALICE, "/alert BTC-USDT above 102")
        ids = [r.id for r in world.rules(ALICE)]
        await eventually(lambda: all(i in engine.evaluator.rules for i in ids), message="armed")
        await eventually(
            lambda: Decimal("100") in engine.evaluator.prices.values(), message="first price"
        )
        world.sim.set_price("BTC-USDT", Decimal("103"))

        def held() -> int:
            with world.db.session() as session:
                return len(session.exec(select(Delivery).where(col(Delivery.held))).all())

        await eventually(lambda: held() == 2, timeout=10, message="both alerts held")
        before = len(world.tg.texts(ALICE))
        assert (await world.ask(ALICE, "/unmute")).text.startswith("🔔 Unmuted. 2 held alert")
        await eventually(lambda: len(world.tg.texts(ALICE)) == before + 2, message="summary")
        summary = world.tg.texts(ALICE)[-1]
        assert summary.startswith("<b>🔕 While muted: 2 alerts</b>")
        assert "crossed 101 up" in summary and "crossed 102 up" in summary

        def statuses() -> set[str]:
            with world.db.session() as session:
                return {d.status for d in session.exec(select(Delivery))}

        await eventually(lambda: statuses() == {"sent"}, message="both recorded as sent")


async def test_quiet_hours_hold_alerts_and_quiet_off_sends_one_summary(
    world: World, database_url: str
) -> None:
    world.sim.set_price("BTC-USDT", Decimal("100"))
    async with pipeline(world, database_url) as engine:
        await world.ask(ALICE, "/start")
        assert (await world.ask(ALICE, "/quiet")).text.startswith("No quiet hours. Set them")
        berlin = datetime.now(ZoneInfo("Europe/Berlin"))
        start, end = f"{berlin - timedelta(hours=1):%H:%M}", f"{berlin + timedelta(hours=2):%H:%M}"
        reply = await world.ask(ALICE, f"/quiet {start}-{end} europe/berlin")
        assert reply.text.startswith(f"🌙 Quiet hours: {start} to {end} (Europe/Berlin).")
        assert f"Quiet now, until {end}." in reply.text and "UTC" not in reply.text
        with world.db.session() as session:
            user = session.exec(select(User).where(User.telegram_user_id == ALICE)).one()
            assert (user.timezone, user.quiet_start, user.quiet_end) == (
                "Europe/Berlin",
                start,
                end,
            )
        await world.ask(ALICE, "/alert BTC-USDT above 101")
        await world.ask(ALICE, "/alert BTC-USDT above 102")
        ids = [r.id for r in world.rules(ALICE)]
        await eventually(lambda: all(i in engine.evaluator.rules for i in ids), message="armed")
        await eventually(
            lambda: Decimal("100") in engine.evaluator.prices.values(), message="first price"
        )
        world.sim.set_price("BTC-USDT", Decimal("103"))

        def held() -> list[str | None]:
            with world.db.session() as session:
                rows = session.exec(select(Delivery).where(col(Delivery.held))).all()
                return [d.hold_reason for d in rows]

        await eventually(lambda: held() == ["quiet", "quiet"], timeout=10, message="both held")
        before = len(world.tg.texts(ALICE))
        assert (await world.ask(ALICE, "/quiet off")).text.startswith("🔔 Quiet hours off.")
        await eventually(lambda: len(world.tg.texts(ALICE)) == before + 2, message="summary")
        summary = world.tg.texts(ALICE)[-1]
        assert summary.startswith("<b>🌙 While quiet: 2 alerts</b>")
        assert "crossed 101 up" in summary and "crossed 102 up" in summary
        assert (await world.ask(ALICE, "/quiet")).text.startswith("No quiet hours.")

    # Without a zone the user's stays: UTC until they name theirs, which the reply says.
    reply = await world.ask(BOB, "/quiet 23:00-7:30")
    assert reply.text.startswith("🌙 Quiet hours: 23:00 to 07:30 (UTC).")
    assert "The times are UTC; to use yours, add it" in reply.text


async def test_a_bot_that_cannot_start_is_retried(database_url: str) -> None:
    upgrade(database_url)
    db = Database(database_url)
    async with FakeTelegram() as tg:
        settings = make_settings(
            database_url, "ws://127.0.0.1:9/", TELEGRAM_BOT_TOKEN="1:wrong", TELEGRAM_API_URL=tg.url
        )
        bot = make_bot(settings, db)
        assert bot is not None
        bot.retry = (0.05, 0.1)
        task = asyncio.create_task(bot.run())
        await eventually(lambda: tg.requests >= 3, message="retries")
        assert not task.done() and not bot.up.is_set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    db.dispose()


async def test_webhook_mode_checks_the_secret_on_every_request(database_url: str) -> None:
    upgrade(database_url)
    db = Database(database_url)
    port = free_port()
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    async with FakeTelegram() as tg:
        settings = make_settings(
            database_url,
            "ws://127.0.0.1:9/",
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=tg.url,
            TELEGRAM_WEBHOOK_URL=hook,
            TELEGRAM_WEBHOOK_SECRET="s3cret_-token",
            ALERTS_BOT_LISTEN=f"127.0.0.1:{port}",
        )
        bot = make_bot(settings, db)
        assert bot is not None
        task = asyncio.create_task(bot.run())
        await eventually(lambda: bool(tg.called("setWebhook")), message="webhook set")
        [webhook] = tg.called("setWebhook")
        assert webhook["url"] == hook and webhook["secret_token"] == "s3cret_-token"
        update = {
            "update_id": 1,
            "message": {
                "message_id": 5,
                "date": 0,
                "chat": {"id": ALICE, "type": "private"},
                "from": {"id": ALICE, "is_bot": False, "first_name": "Alice"},
                "text": "/help",
            },
        }
        async with httpx.AsyncClient() as client:
            for secret in (None, "wrong"):
                headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
                r = await client.post(hook, json=update, headers=headers)
                assert r.status_code == 401
            good = {"X-Telegram-Bot-Api-Secret-Token": "s3cret_-token"}
            assert (await client.post(hook, json=update, headers=good)).status_code == 200
        await eventually(lambda: bool(tg.texts(ALICE)), message="reply")
        assert len(tg.texts(ALICE)) == 1 and "/alert BTC-USDT above" in tg.texts(ALICE)[0]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    db.dispose()


async def test_alerts_shows_why_a_rule_cannot_fire(world: World) -> None:
    with world.db.session() as session:
        session.add(SymbolStatus(symbol="NOPE-USDT", status="symbol not found on the exchange"))
        session.commit()
    await world.ask(ALICE, "/alert NOPE-USDT above 5")
    await world.ask(ALICE, "/alert BTC-USDT above 70000")
    listing = await world.ask(ALICE, "/alerts")
    nope, btc = listing.text.splitlines()[1:3]
    assert "NOPE-USDT" in nope and "⚠️ symbol not found on the exchange" in nope
    assert "BTC-USDT" in btc and "⚠️" not in btc
