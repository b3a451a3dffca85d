"""Webhook destinations against a local receiver over real HTTP: the event object or a body
template, signed as the README says a receiver verifies, the same `Idempotency-Key` on every
retry, 408/429/5xx retried (429 after its `Retry-After`), any other 4xx dead at once, the
address policy; and the REST API that saves them (secret never shown)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.db.migrate import upgrade
from alerts.db.models import Delivery, Destination
from alerts.db.outbox import record_event
from alerts.db.session import Database
from alerts.delivery.webhook import WebhookNotifier, retry_after
from alerts.delivery.worker import DeliveryWorker, WorkerConfig
from alerts.feed.backoff import Backoff
from alerts.security import SecretBox
from tests.api_helpers import SECRET_KEY, Api
from tests.clocks import Clock
from tests.factories import add_destination, add_rule, add_user
from tests.webhook import Receiver, serving

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SECRET = "whsec-0123456789abcdef-SECRET"
README = Path(__file__).resolve().parents[1] / "README.md"


def documented_verify() -> Callable[..., bool]:
    """The README's receiver recipe, run as written."""
    text = README.read_text()
    match = re.search(r"<!-- webhook-verify -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README: the webhook verification example is missing"
    scope: dict[str, Any] = {}
    exec(compile(match.group(1), "README.md", "exec"), scope)  # noqa: S102 (our own README)
    verify: Callable[..., bool] = scope["verify"]
    return verify


@dataclass
class World:
    db: Database
    box: SecretBox
    worker: DeliveryWorker
    clock: Clock
    hook: Receiver
    user_id: int
    rule_id: int

    def destination(self, **fields: Any) -> int:
        fields.setdefault("url_sealed", self.box.seal(self.hook.url(scheme="http")))
        return add_destination(self.db, self.user_id, "webhook", **fields)

    def fire(self, destination_id: int) -> tuple[int, int]:
        """An event with one pending delivery to `destination_id`: (event id, delivery id)."""
        with self.db.session() as session:
            event, [delivery] = record_event(
                session,
                user_id=self.user_id,
                rule_id=self.rule_id,
                rule_name="BTC 70k",
                kind="price_cross",
                symbol="BTC-USDT",
                values={"symbol": "BTC-USDT", "price": "70001.5", "level": "70000"}
                | {"direction": "up", "previous": "69990"},
                destination_ids=[destination_id],
                now=self.clock(),
            )
            session.commit()
            assert event.id is not None and delivery.id is not None
            return event.id, delivery.id

    def delivery(self, delivery_id: int) -> Delivery:
        with self.db.session() as session:
            row = session.get(Delivery, delivery_id)
            assert row is not None
            return row


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    upgrade(database_url)
    db = Database(database_url)
    user_id = add_user(db)
    rule_id = add_rule(db, user_id)
    clock = Clock(T0)
    box = SecretBox(SECRET_KEY)
    webhooks = WebhookNotifier(allow_private=True, timeout=5)  # the receiver is local
    config = WorkerConfig(backoff=Backoff(initial=5, maximum=60, factor=2, jitter=0.0))
    worker = DeliveryWorker(db, box, telegram=None, webhooks=webhooks, config=config, clock=clock)
    async with serving(Receiver()) as hook:
        yield World(db, box, worker, clock, hook, user_id, rule_id)
    await webhooks.close()
    await worker.apprise.close()
    db.dispose()


async def test_the_event_object_arrives_signed_as_the_readme_says_to_verify(
    world: World,
) -> None:
    destination = world.destination(secret_sealed=world.box.seal(SECRET))
    event_id, delivery_id = world.fire(destination)
    assert await world.worker.run_once()
    [raw], [headers], [body] = world.hook.raw, world.hook.headers, world.hook.bodies
    assert headers["Idempotency-Key"] == str(delivery_id)
    assert headers["X-Alerts-Event"] == str(event_id)
    assert headers["Content-Type"] == "application/json"
    verify = documented_verify()
    assert verify(SECRET, headers["X-Alerts-Signature"], raw)
    assert not verify("another-secret-0123456789", headers["X-Alerts-Signature"], raw)
    assert not verify(SECRET, headers["X-Alerts-Signature"], raw.replace(b"70001.5", b"1"))
    stale = re.sub(r"t=\d+", f"t={int(time.time()) - 3600}", headers["X-Alerts-Signature"])
    assert not verify(SECRET, stale, raw)
    assert body == {
        "type": "alert",
        "event_id": event_id,
        "delivery_id": delivery_id,
        "rule_id": world.rule_id,
        "rule_name": "BTC 70k",
        "kind": "price_cross",
        "symbol": "BTC-USDT",
        "values": {
            "symbol": "BTC-USDT",
            "price": "70001.5",
            "level": "70000",
            "direction": "up",
            "previous": "69990",
        },
        "fired_at": T0.isoformat(),
        "late": False,
        "test": False,
        "held": False,
        "fallback": False,
    }
    assert world.delivery(delivery_id).status == "sent"


async def test_without_a_secret_there_is_no_signature(world: World) -> None:
    world.fire(world.destination())
    assert await world.worker.run_once()
    [headers] = world.hook.headers
    assert "X-Alerts-Signature" not in headers


async def test_a_body_template_renders_the_values(world: World) -> None:
    template = {
        "text": "{symbol} crossed {level}: now {price} ({rule})",
        "ids": ["{event_id}", "{rule_id}"],
        "n": 3,
        "nested": {"dir": "{direction}", "none": "{percent}"},
    }
    event_id, _ = world.fire(world.destination(body=template))
    assert await world.worker.run_once()
    assert world.hook.bodies == [
        {
            "text": "BTC-USDT crossed 70000: now 70001.5 (BTC 70k)",
            "ids": [str(event_id), str(world.rule_id)],
            "n": 3,
            "nested": {"dir": "up", "none": ""},
        }
    ]


async def test_a_retry_after_a_500_carries_the_same_idempotency_key(world: World) -> None:
    world.hook.statuses = [500]
    _, delivery_id = world.fire(world.destination())
    assert await world.worker.run_once()
    row = world.delivery(delivery_id)
    assert row.status == "failed" and row.last_error == "HTTP 500"
    assert row.next_attempt_at == T0 + timedelta(seconds=5)  # the backoff's first step
    world.clock.now = row.next_attempt_at
    assert await world.worker.run_once()
    assert world.delivery(delivery_id).status == "sent"
    first, second = world.hook.headers
    assert first["Idempotency-Key"] == second["Idempotency-Key"] == str(delivery_id)


async def test_a_429_waits_for_its_retry_after(world: World) -> None:
    world.hook.statuses = [429]
    world.hook.failure_headers = {"Retry-After": "2"}
    _, delivery_id = world.fire(world.destination())
    assert await world.worker.run_once()
    row = world.delivery(delivery_id)
    assert row.status == "failed" and row.last_error == "HTTP 429"
    assert row.next_attempt_at == T0 + timedelta(seconds=2)  # not the backoff's 5 s
    world.clock.now = T0 + timedelta(seconds=1.9)
    assert not await world.worker.run_once()
    world.clock.now = T0 + timedelta(seconds=2)
    assert await world.worker.run_once()
    assert world.delivery(delivery_id).status == "sent" and len(world.hook.headers) == 2


@pytest.mark.parametrize("status", [408, 503])
async def test_408_and_5xx_are_retried(world: World, status: int) -> None:
    world.hook.statuses = [status]
    _, delivery_id = world.fire(world.destination())
    assert await world.worker.run_once()
    assert world.delivery(delivery_id).status == "failed"


@pytest.mark.parametrize("status", [410, 400, 404, 301])
async def test_any_other_answer_is_dead_at_once(world: World, status: int) -> None:
    world.hook.statuses = [status]
    world.hook.failure_headers = {"Location": "http://127.0.0.1:1/elsewhere"}
    _, delivery_id = world.fire(world.destination())
    assert await world.worker.run_once()
    row = world.delivery(delivery_id)
    assert row.status == "dead" and row.attempts == 1
    assert row.last_error is not None and row.last_error.startswith(f"HTTP {status}")
    world.clock.now = T0 + timedelta(hours=1)
    assert not await world.worker.run_once()
    assert len(world.hook.headers) == 1  # never tried again, the redirect not followed


async def test_a_local_address_is_refused_unless_private_targets_are_allowed(
    world: World,
) -> None:
    strict = WebhookNotifier(allow_private=False)
    worker = DeliveryWorker(world.db, world.box, telegram=None, webhooks=strict, clock=world.clock)
    _, delivery_id = world.fire(world.destination())
    try:
        assert await worker.run_once()
    finally:
        await strict.close()
        await worker.apprise.close()
    row = world.delivery(delivery_id)
    assert row.status == "dead" and row.last_error == "address not allowed"
    assert world.hook.headers == [] and world.hook.peak == 0


async def test_a_receiver_that_does_not_answer_in_time_is_retried(world: World) -> None:
    slow = WebhookNotifier(allow_private=True, timeout=0.2)
    worker = DeliveryWorker(world.db, world.box, telegram=None, webhooks=slow, clock=world.clock)
    world.hook.delay = 1.0
    _, delivery_id = world.fire(world.destination())
    try:
        assert await worker.run_once()
    finally:
        await slow.close()
        await worker.apprise.close()
    row = world.delivery(delivery_id)
    assert row.status == "failed" and row.last_error == "timed out"


def test_retry_after_reads_seconds_and_dates_within_an_hour() -> None:
    now = T0.timestamp()
    assert retry_after("2", now) == 2.0
    assert retry_after(" 120 ", now) == 120.0
    assert retry_after("Wed, 02 Dec 2026 12:00:30 GMT", now) == 30.0
    assert retry_after("Wed, 02 Dec 2026 11:00:00 GMT", now) == 0.0  # already past
    assert retry_after("86400", now) == 3600.0
    assert retry_after("soon", now) is None and retry_after(None, now) is None


# --- the REST API ---------------------------------------------------------------------


def test_a_webhook_is_saved_with_its_secret_never_shown(api: Api) -> None:
    alice = api.user("alice")
    url = "https://hooks.example.com/alerts?token=TOKEN-SECRET-123"
    made = api.create(
        "/v1/destinations",
        {"kind": "webhook", "url": url, "secret": SECRET, "body": {"t": "{symbol}"}},
        alice,
    )
    assert made["kind"] == "webhook" and made["signed"] is True
    assert made["body"] == {"t": "{symbol}"} and made["name"] == "webhook"
    assert "TOKEN-SECRET-123" not in str(made) and SECRET not in str(made)
    shown = api.client.get(f"/v1/destinations/{made['id']}", headers=alice).json()
    listed = api.client.get("/v1/destinations", headers=alice).json()
    assert SECRET not in str(shown) + str(listed) and "TOKEN-SECRET" not in str(listed)
    r = api.client.patch(
        f"/v1/destinations/{made['id']}", json={"secret": None, "body": None}, headers=alice
    )
    assert r.status_code == 200, r.text
    assert r.json()["signed"] is False and r.json()["body"] is None
    with api.db.session() as session:
        row = session.get(Destination, made["id"])
        assert row is not None and row.secret_sealed is None and row.url_sealed is not None
        assert url not in row.url_sealed  # stored encrypted


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"kind": "webhook", "url": "ftp://example.com/x"}, "https://"),
        ({"kind": "webhook", "url": "https://user:pw@example.com/x"}, "no credentials"),
        ({"kind": "webhook", "url": "http://127.0.0.1:9/x"}, "address not allowed"),
        ({"kind": "webhook", "url": "https://[::1]/x"}, "address not allowed"),
        ({"kind": "webhook", "url": "https://example.com/x", "secret": "short"}, "secret"),
        ({"kind": "webhook", "url": "https://example.com/x", "body": {"a": "{nope}"}}, "{nope}"),
        ({"kind": "webhook", "url": "https://example.com/x", "body": {"a": "{price!r}"}}, "spec"),
        ({"kind": "webhook", "url": "https://example.com/x", "body": "text"}, "body"),
    ],
)
def test_a_bad_webhook_is_a_422_that_says_why(api: Api, body: dict[str, Any], says: str) -> None:
    r = api.client.post("/v1/destinations", json=body, headers=api.user("alice"))
    assert r.status_code == 422, r.text
    assert says in r.text


def test_secret_and_body_apply_to_webhooks_only(api: Api) -> None:
    alice = api.user("alice")
    made = api.create(
        "/v1/destinations", {"kind": "apprise", "url": "ntfy://ntfy.sh/topic-x"}, alice
    )
    r = api.client.patch(f"/v1/destinations/{made['id']}", json={"secret": SECRET}, headers=alice)
    assert r.status_code == 422 and "webhook destinations only" in r.text


async def test_a_kept_connection_the_receiver_closed_costs_no_attempt(world: World) -> None:
    receiver = Receiver()
    async with serving(receiver, keepalive=0.05):
        url = world.box.seal(receiver.url(scheme="http"))
        destination = world.destination(url_sealed=url)
        _, first = world.fire(destination)
        assert await world.worker.run_once()
        await asyncio.sleep(0.3)  # the receiver closes the idle connection meanwhile
        _, second = world.fire(destination)
        assert await world.worker.run_once()
    assert world.delivery(first).status == world.delivery(second).status == "sent"
    assert world.delivery(second).attempts == 1 and len(set(receiver.peers)) == 2


async def test_what_quiet_hours_held_goes_to_a_webhook_one_by_one_marked_held(
    world: World,
) -> None:
    destination = world.destination()
    ids = [world.fire(destination)[1] for _ in range(3)]
    with world.db.session() as session:  # as the hold stage leaves them when quiet hours end
        for delivery_id in ids:
            row = session.get(Delivery, delivery_id)
            assert row is not None
            row.held, row.hold_reason = True, "quiet"
            session.add(row)
        session.commit()
    assert await world.worker.run_once()
    assert sorted(b["delivery_id"] for b in world.hook.bodies) == ids
    assert all(b["held"] is True and b["type"] == "alert" for b in world.hook.bodies)
    assert sorted(h["Idempotency-Key"] for h in world.hook.headers) == sorted(map(str, ids))
