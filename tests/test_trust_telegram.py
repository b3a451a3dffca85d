"""Who may message which Telegram chat, tried as an attacker would: over real HTTP to the API
and through a fake Bot API that plays the users, with a delivery worker sending what is
queued. A user gets alerts only into chats they proved theirs: their own, one where they (as
an administrator) sent /start, or one where an administrator sent /link with their code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from alerts.bot.app import BotRunner
from alerts.db.migrate import upgrade
from alerts.db.models import Destination, TelegramLinkCode, utcnow
from alerts.db.session import Database
from alerts.services.telegram_chats import normalize_code, redeem_link_code
from alerts.simulator import Simulator, SimulatorConfig
from alerts.wiring import make_bot, make_worker
from tests.api_helpers import ADMIN_TOKEN, api_server, make_settings
from tests.fake_telegram import TOKEN, FakeTelegram, Sent
from tests.feed_helpers import eventually

ALICE, BOB, CAROL = 5001, 5002, 5003  # Telegram user ids, and their private chats
GROUP = -100_5550  # Bob's group: Bob and Carol administer it, Alice is a member
CHANNEL = -1_009_000_000_777


@dataclass
class World:
    tg: FakeTelegram
    db: Database
    bot: BotRunner
    api: httpx.AsyncClient
    keys: dict[int, dict[str, str]]

    async def ask(self, user: int, text: str, chat: int | None = None) -> Sent:
        """`user` sends `text`; the bot's reply in that chat."""
        return await self.tg.ask(user, text, chat)

    async def post(self, text: str) -> Sent:
        """The channel's administrator posts `text` there; the bot's reply in the channel."""
        return await self.tg.ask(0, text, CHANNEL)

    async def code(self, user: int) -> str:
        r = await self.api.post("/v1/destinations/telegram-links", headers=self.keys[user])
        assert r.status_code == 201, r.text
        return str(r.json()["code"])

    async def call(self, method: str, path: str, user: int, body: Any = None) -> httpx.Response:
        return await self.api.request(method, path, json=body, headers=self.keys[user])


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    upgrade(database_url)
    db = Database(database_url)
    async with (
        Simulator(SimulatorConfig(tick_interval=3600)) as sim,
        FakeTelegram() as tg,
    ):
        tg.admins[GROUP] = {BOB, CAROL}
        settings = make_settings(
            database_url,
            sim.url,
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=tg.url,
            ALERTS_BOT_COMMANDS_PER_MINUTE=1000,
        )
        bot = make_bot(settings, db)
        assert bot is not None
        bot.polling_timeout = 1
        worker = make_worker(settings, db)
        worker.config.poll_interval = 0.05
        tasks = [asyncio.create_task(bot.run()), asyncio.create_task(worker.run())]
        await asyncio.wait_for(bot.up.wait(), 10)
        try:
            async with api_server(settings, db) as api:
                keys = {}
                for user in (ALICE, BOB, CAROL):
                    r = await api.post(
                        "/v1/users",
                        json={"name": f"user{user}", "telegram_user_id": user},
                        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    )
                    keys[user] = {"Authorization": f"Bearer {r.json()['api_key']}"}
                yield World(tg, db, bot, api, keys)
        finally:
            await worker.stop()
            tasks[0].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert worker.telegram is not None
            await worker.telegram.close()
            db.dispose()


async def test_a_chat_nobody_proved_cannot_be_named_over_rest(world: World) -> None:
    r = await world.call("POST", "/v1/destinations", ALICE, {"kind": "telegram", "chat_id": BOB})
    assert r.status_code == 422
    message = r.json()["detail"][0]["msg"]
    assert "not proven yours" in message and "/v1/destinations/telegram-links" in message
    assert "/link CODE" in message
    r = await world.call("POST", "/v1/destinations", ALICE, {"kind": "telegram", "chat_id": GROUP})
    assert r.status_code == 422

    own = await world.call("POST", "/v1/destinations", ALICE, {"kind": "telegram"})
    assert own.status_code == 201 and own.json()["chat_id"] == ALICE
    path = f"/v1/destinations/{own.json()['id']}"
    for chat in (BOB, GROUP, CHANNEL):
        r = await world.call("PATCH", path, ALICE, {"chat_id": chat})
        assert r.status_code == 422 and "not proven yours" in r.text
    assert (await world.call("GET", path, ALICE)).json()["chat_id"] == ALICE

    # A user Telegram does not know yet has no chat of their own to name.
    r = await world.api.post(
        "/v1/users", json={"name": "dave"}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    dave = {"Authorization": f"Bearer {r.json()['api_key']}"}
    r = await world.api.post("/v1/destinations", json={"kind": "telegram"}, headers=dave)
    assert r.status_code == 422 and "/start" in r.text


async def test_user_a_gets_no_message_into_user_bs_chats_by_any_route(world: World) -> None:
    """Alice tries every route into Bob's private chat and Bob's group; nothing arrives."""
    attempts = [
        ("POST", "/v1/destinations", {"kind": "telegram", "chat_id": BOB}),
        ("POST", "/v1/destinations", {"kind": "telegram", "chat_id": GROUP}),
    ]
    for method, path, body in attempts:
        assert (await world.call(method, path, ALICE, body)).status_code == 422
    own = (await world.call("POST", "/v1/destinations", ALICE, {"kind": "telegram"})).json()
    patched = await world.call("PATCH", f"/v1/destinations/{own['id']}", ALICE, {"chat_id": BOB})
    assert patched.status_code == 422

    # Bob's destination ids are not Alice's to name either.
    bobs = (await world.call("POST", "/v1/destinations", BOB, {"kind": "telegram"})).json()
    body = {"kind": "spread", "symbol": "BTC-USDT", "percent": "1", "destination_ids": [bobs["id"]]}
    assert (await world.call("POST", "/v1/rules", ALICE, body)).status_code == 422

    # In Bob's group Alice is a member, not an administrator: neither /start nor /link works.
    assert "Only an administrator" in (await world.ask(ALICE, "/start", chat=GROUP)).text
    code = await world.code(ALICE)
    assert "Only an administrator" in (await world.ask(ALICE, f"/link {code}", chat=GROUP)).text

    # Her rule's test message goes to her own chat only.
    rule = (await world.call("POST", "/v1/rules", ALICE, {**body, "destination_ids": []})).json()
    assert (await world.call("POST", f"/v1/rules/{rule['id']}/test", ALICE)).status_code == 202
    await eventually(lambda: bool(world.tg.texts(ALICE)), message="Alice's test message")
    await asyncio.sleep(0.3)  # what else the worker would send, it has sent by now
    group_texts = world.tg.texts(GROUP)
    assert world.tg.texts(BOB) == []
    assert all("Only an administrator" in t for t in group_texts)  # only the bot's refusals
    with world.db.session() as session:
        chats = {d.chat_id for d in session.exec(select(Destination))}
    assert chats == {ALICE, BOB}  # Alice's own and Bob's own: nothing else was linked


async def test_link_code_makes_a_group_a_destination_once_by_an_administrator(
    world: World,
) -> None:
    code = await world.code(ALICE)
    assert normalize_code(code) is not None and len(code) == 14  # XXXX-XXXX-XXXX
    # A member of the group cannot use it there, and trying does not spend it.
    assert "Only an administrator" in (await world.ask(ALICE, f"/link {code}", chat=GROUP)).text
    reply = await world.ask(CAROL, f"/link {code.lower()}", chat=GROUP)
    assert "Linked" in reply.text
    listed = (await world.call("GET", "/v1/destinations", ALICE)).json()["items"]
    [group] = [d for d in listed if d["chat_id"] == GROUP]
    assert group["enabled"] and f"#{group['id']}" in reply.text
    # Single use: the same code again is refused, in any chat.
    again = await world.ask(BOB, f"/link {code}", chat=GROUP)
    assert "unknown, already used or expired" in again.text
    assert "Send /link CODE" in (await world.ask(BOB, "/link nonsense", chat=GROUP)).text
    hostile = [
        "A" * 4000,
        "K7QX\x00M2PD\x00R9TB",
        "".join(chr(ord(c) + 0xFEE0) for c in "KXQX-MMPD-RRTB"),  # full-width letters
        "' OR 1=1 --",
        "\u202e" * 12,
    ]
    for text in hostile:
        reply = await world.ask(BOB, f"/link {text}", chat=GROUP)
        assert "Send /link CODE" in reply.text and len(reply.text) < 500

    # The group now takes Alice's alerts; Bob (who administers it) never proved it for her.
    body = {
        "kind": "spread",
        "symbol": "BTC-USDT",
        "percent": "1",
        "destination_ids": [group["id"]],
    }
    rule = (await world.call("POST", "/v1/rules", ALICE, body)).json()
    assert (await world.call("POST", f"/v1/rules/{rule['id']}/test", ALICE)).status_code == 202
    await eventually(
        lambda: any("BTC-USDT" in t for t in world.tg.texts(GROUP)), message="test in the group"
    )
    # Deleting the destination keeps the proof: it can be added back over REST.
    unlinked = await world.call("PATCH", f"/v1/rules/{rule['id']}", ALICE, {"destination_ids": []})
    assert unlinked.status_code == 200
    assert (await world.call("DELETE", f"/v1/destinations/{group['id']}", ALICE)).status_code == 204
    r = await world.call("POST", "/v1/destinations", ALICE, {"kind": "telegram", "chat_id": GROUP})
    assert r.status_code == 201


async def test_a_channel_is_linked_by_a_post_and_a_private_chat_by_its_owner(
    world: World,
) -> None:
    code = await world.code(ALICE)
    assert "Linked" in (await world.post(f"/link {code}")).text
    code = await world.code(ALICE)
    # Carol links her own private chat to Alice's alerts: she sent it, so she agreed.
    assert "Linked" in (await world.ask(CAROL, f"/link {code}")).text
    listed = (await world.call("GET", "/v1/destinations", ALICE)).json()["items"]
    assert {d["chat_id"] for d in listed} >= {CHANNEL, CAROL}


async def test_codes_expire_are_bounded_and_belong_to_their_maker(world: World) -> None:
    code = await world.code(BOB)
    with world.db.session() as session:
        late = redeem_link_code(
            session,
            normalize_code(code) or "",
            chat_id=GROUP,
            name="g",
            now=utcnow() + timedelta(minutes=10, seconds=1),
        )
        assert late is None  # ten minutes, not a second more
    for _ in range(4):
        await world.code(BOB)
    r = await world.call("POST", "/v1/destinations/telegram-links", BOB)
    assert r.status_code == 409 and "unused link codes" in r.text
    with world.db.session() as session:
        stored = session.exec(select(TelegramLinkCode)).all()
        assert len(stored) == 5 and all(code.replace("-", "") not in s.code_hash for s in stored)


async def test_forged_buttons_get_a_short_answer_and_no_traceback(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    reply = await world.ask(ALICE, "/alert BTC-USDT above 70000")
    for data, answer in [
        ("snooze:99999999999999999999999:1", "no longer exists"),
        ("disable:-5", "no longer exists"),
        ("r:delete:99999999999999999999:0", "no longer exists"),
        ("r:pause:1:99999999999999999999", "Paused alert #1"),
        ("p:99999999999999999999", ""),
        ("zz:not-ours", "no longer valid"),
    ]:
        query = world.tg.press_data(ALICE, reply, data)

        def answered(query: str = query) -> list[dict[str, Any]]:
            calls = world.tg.called("answerCallbackQuery")
            return [c for c in calls if c["callback_query_id"] == query]

        await eventually(lambda answered=answered: bool(answered()), message=data)
        assert answer in str(answered()[0].get("text", "")), data
    assert not [r for r in caplog.records if r.exc_info], "a forged button raised"
