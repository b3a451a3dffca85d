"""Fallback routes: a firing whose every delivery to its rule's destinations ended dead goes
to the rule's fallback destinations once (a blocked Telegram chat, then a webhook over real
HTTP), never while a primary delivery is still alive, once even when two workers record the
last two dead deliveries at the same time; and the REST API that sets them."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from alerts.db import queue
from alerts.db.migrate import upgrade
from alerts.db.models import Delivery
from alerts.db.outbox import record_event
from alerts.db.queue import Attempt, Outcome, claim, finish_many
from alerts.db.session import Database
from alerts.delivery.ratelimit import Limits, RateLimiter
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.webhook import WebhookNotifier
from alerts.delivery.worker import DeliveryWorker
from alerts.security import SecretBox
from tests.api_helpers import SECRET_KEY, Api
from tests.factories import add_destination, add_rule, add_user
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.webhook import Receiver, serving

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CHAT, OTHER_CHAT = 4242, 4343
BLOCKED = {"status": 403, "description": "Forbidden: bot was blocked by the user"}


@dataclass
class World:
    db: Database
    box: SecretBox
    tg: FakeTelegram
    hook: Receiver
    worker: DeliveryWorker
    user_id: int

    def destination(self, kind: str, **fields: Any) -> int:
        return add_destination(self.db, self.user_id, kind, **fields)

    def webhook(self) -> int:
        return self.destination("webhook", url_sealed=self.box.seal(self.hook.url("", "http")))

    def rule(self, primaries: list[int], fallbacks: list[int]) -> int:
        return add_rule(self.db, self.user_id, destinations=primaries, fallbacks=fallbacks)

    def fire(self, rule_id: int, destinations: list[int]) -> int:
        with self.db.session() as session:
            event, _ = record_event(
                session,
                user_id=self.user_id,
                rule_id=rule_id,
                rule_name="BTC 70k",
                kind="price_cross",
                symbol="BTC-USDT",
                values={"symbol": "BTC-USDT", "price": "70100", "level": "70000"},
                destination_ids=destinations,
                now=T0,
            )
            session.commit()
            assert event.id is not None
            return event.id

    def deliveries(self, event_id: int) -> list[Delivery]:
        with self.db.session() as session:
            rows = session.exec(
                select(Delivery).where(Delivery.event_id == event_id).order_by(col(Delivery.id))
            )
            return list(rows)

    async def drain(self) -> None:
        while await self.worker.run_once():
            pass


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    upgrade(database_url)
    db = Database(database_url)
    user_id = add_user(db, telegram_user_id=CHAT)
    box = SecretBox(SECRET_KEY)
    async with FakeTelegram() as tg, serving(Receiver()) as hook:
        fast = Limits(bot_per_second=1000, private_interval=0.0, group_per_minute=1000)
        telegram = TelegramNotifier(TOKEN, api_url=tg.url, limiter=RateLimiter(fast))
        webhooks = WebhookNotifier(allow_private=True)  # the receiver is local
        worker = DeliveryWorker(db, box, telegram=telegram, webhooks=webhooks, clock=lambda: T0)
        yield World(db, box, tg, hook, worker, user_id)
        await telegram.close()
        await webhooks.close()
        await worker.apprise.close()
    db.dispose()


async def test_a_blocked_chat_sends_the_firing_to_the_fallback_webhook_once(
    world: World,
) -> None:
    chat = world.destination("telegram", chat_id=CHAT)
    hook = world.webhook()
    rule = world.rule([chat], [hook])
    world.tg.fail_next(CHAT, **BLOCKED)
    event = world.fire(rule, [chat])
    await world.drain()
    primary, fallback = world.deliveries(event)
    assert (primary.destination_id, primary.status, primary.fallback) == (chat, "dead", False)
    assert (fallback.destination_id, fallback.status, fallback.fallback) == (hook, "sent", True)
    [body] = world.hook.bodies
    assert body["fallback"] is True and body["event_id"] == event
    # A later firing: the chat is disabled now, so it is dead at once and falls back again.
    second = world.fire(rule, [chat])
    await world.drain()
    assert [d.status for d in world.deliveries(second)] == ["dead", "sent"]
    assert len(world.hook.bodies) == 2 and world.tg.texts(CHAT) == []


async def test_no_fallback_while_a_primary_delivery_went_through(world: World) -> None:
    blocked = world.destination("telegram", chat_id=CHAT)
    fine = world.destination("telegram", chat_id=OTHER_CHAT)
    hook = world.webhook()
    rule = world.rule([blocked, fine], [hook])
    world.tg.fail_next(CHAT, **BLOCKED)
    event = world.fire(rule, [blocked, fine])
    await world.drain()
    assert sorted(d.status for d in world.deliveries(event)) == ["dead", "sent"]
    assert world.hook.bodies == [] and len(world.tg.texts(OTHER_CHAT)) == 1


async def test_a_rule_without_fallbacks_just_ends_dead(world: World) -> None:
    chat = world.destination("telegram", chat_id=CHAT)
    rule = world.rule([chat], [])
    world.tg.fail_next(CHAT, **BLOCKED)
    event = world.fire(rule, [chat])
    await world.drain()
    assert [d.status for d in world.deliveries(event)] == ["dead"]


def test_two_workers_recording_the_last_two_dead_deliveries_fall_back_once(
    world: World,
) -> None:
    first = world.destination("telegram", chat_id=CHAT)
    second = world.destination("telegram", chat_id=OTHER_CHAT)
    hook = world.webhook()
    rule = world.rule([first, second], [hook])
    event = world.fire(rule, [first, second])
    jobs = claim(world.db, now=T0, lease=timedelta(seconds=60), limit=10)
    assert len(jobs) == 2
    dead = Outcome(queue.DEAD, "blocked")
    start = threading.Barrier(2)

    def record(job: queue.Job) -> None:
        start.wait()
        finish_many(world.db, [Attempt(job, dead, T0, 5)])

    threads = [threading.Thread(target=record, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    rows = world.deliveries(event)
    assert [(d.destination_id, d.fallback, d.status) for d in rows] == [
        (first, False, "dead"),
        (second, False, "dead"),
        (hook, True, "pending"),
    ]


# --- the REST API ---------------------------------------------------------------------


def _hook(api: Api, headers: dict[str, str]) -> int:
    made = api.create(
        "/v1/destinations", {"kind": "webhook", "url": "https://example.com/hook"}, headers
    )
    return int(made["id"])


def test_fallbacks_are_saved_read_and_kept_apart_from_destinations(api: Api) -> None:
    alice = api.user("alice")
    primary, fallback = _hook(api, alice), _hook(api, alice)
    body = {
        "kind": "price_cross",
        "symbol": "BTC-USDT",
        "level": "70000",
        "destination_ids": [primary],
        "fallback_destination_ids": [fallback],
        "urgent": True,
    }
    made = api.create("/v1/rules", body, alice)
    assert made["fallback_destination_ids"] == [fallback] and made["urgent"] is True
    read = api.client.get(f"/v1/rules/{made['id']}", headers=alice).json()
    listed = api.client.get("/v1/rules", headers=alice).json()["items"]
    assert read["fallback_destination_ids"] == listed[0]["fallback_destination_ids"] == [fallback]
    r = api.client.delete(f"/v1/destinations/{fallback}", headers=alice)
    assert r.status_code == 409 and "fallback_destination_ids" in r.text
    r = api.client.patch(
        f"/v1/rules/{made['id']}", json={"fallback_destination_ids": []}, headers=alice
    )
    assert r.status_code == 200 and r.json()["fallback_destination_ids"] == []
    assert r.json()["destination_ids"] == [primary]
    assert api.client.delete(f"/v1/destinations/{fallback}", headers=alice).status_code == 204


def test_a_fallback_must_be_another_destination_of_yours(api: Api) -> None:
    alice, bob = api.user("alice"), api.user("bob")
    mine, theirs = _hook(api, alice), _hook(api, bob)
    base = {"kind": "price_cross", "symbol": "BTC-USDT", "level": "70000"}
    r = api.client.post(
        "/v1/rules",
        json={**base, "destination_ids": [mine], "fallback_destination_ids": [mine]},
        headers=alice,
    )
    assert r.status_code == 422 and "already in destination_ids" in r.text
    r = api.client.post(
        "/v1/rules", json={**base, "fallback_destination_ids": [theirs]}, headers=alice
    )
    assert r.status_code == 422 and "does not exist" in r.text
