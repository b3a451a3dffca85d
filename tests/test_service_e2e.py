"""The service end to end, as `alerts run` and as `alerts api` + `alerts engine` + two
`alerts worker` + `alerts bot` on PostgreSQL alike (see `tests.deployments`): rules created
over REST or in the bot, prices crossing in the simulator, messages arriving at a fake Bot API
server, mute and grouping as a user sees them; then SIGTERM stops every process cleanly."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from alerts.simulator import Simulator, SimulatorConfig
from tests.api_helpers import SECRET_KEY
from tests.deployments import Deployment, Layout, deployed
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually
from tests.test_webhooks import documented_verify
from tests.webhook import Receiver, serving

ADMIN = "service-e2e-admin"
CHAT = 777
BTC = "BTC-USDT"
CROSSED = re.compile(r"crossed (\d+) up")
# Every metric the service promises (issue 7), as prometheus_client's parser names them.
METRICS = [
    "alerts_pushes",
    "alerts_pushes_unparseable",
    "alerts_evaluation_seconds",
    "alerts_rules_loaded",
    "alerts_firings",
    "alerts_deliveries",
    "alerts_delivery_latency_seconds",
    "alerts_feed_reconnects",
    "alerts_feed_connected",
    "alerts_feed_last_message_age_seconds",
    "alerts_delivery_queue_depth",
]


@dataclass
class Service:
    sim: Simulator
    tg: FakeTelegram
    deployment: Deployment
    client: httpx.AsyncClient

    async def user(self, telegram_user_id: int = CHAT) -> dict[str, str]:
        """A user made by the administrator, with their own chat as a destination."""
        admin = {"Authorization": f"Bearer {ADMIN}"}
        body = {"name": "alice", "telegram_user_id": telegram_user_id}
        r = await self.client.post("/v1/users", json=body, headers=admin)
        assert r.status_code == 201, r.text
        user = {"Authorization": f"Bearer {r.json()['api_key']}"}
        r = await self.client.post("/v1/destinations", json={"kind": "telegram"}, headers=user)
        assert r.status_code == 201, r.text
        return user

    async def checks(self) -> dict[str, Any]:
        """`/readyz`'s checks once it answers 200."""
        for _ in range(100):
            r = await self.client.get("/readyz")
            if r.status_code == 200:
                return dict(r.json()["checks"])
            await asyncio.sleep(0.1)
        raise AssertionError(f"not ready: {r.text}")

    async def armed(self, user: dict[str, str], rules: int, price: Decimal) -> None:
        """Wait until the engine holds `rules` rules and has seen `price` for BTC-USDT."""

        async def ready() -> bool:
            feeds = (await self.checks())["feeds"]
            r = await self.client.get(f"/v1/market/tickers/{BTC}", headers=user)
            return (
                feeds["rules"] == rules and r.status_code == 200 and r.json()["last"] == str(price)
            )

        deadline = time.monotonic() + 20
        while not await ready():
            assert time.monotonic() < deadline, "the engine did not arm the rules"
            await asyncio.sleep(0.1)


@pytest.fixture
async def service(layout: Layout) -> AsyncIterator[Service]:
    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim, FakeTelegram() as tg:
        sim.set_price(BTC, Decimal("100"))
        env = {
            "XROCKET_WS_URL": sim.url,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.url,
            "ALERTS_ADMIN_TOKEN": ADMIN,
            "ALERTS_SECRET_KEY": SECRET_KEY,  # to store webhooks
            "ALERTS_ALLOW_PRIVATE_TARGETS": "true",  # the webhook receiver is local
        }
        async with deployed(layout, env) as deployment, deployment.client as client:
            yield Service(sim, tg, deployment, client)
        deployment.assert_clean_exit(TOKEN)


async def test_a_crossing_reaches_telegram_and_the_service_reports_it(
    service: Service, layout: Layout
) -> None:
    client, sim, tg = service.client, service.sim, service.tg
    user = await service.user()
    body = {"kind": "price_cross", "symbol": BTC, "level": "101"}
    rule = (await client.post("/v1/rules", json=body, headers=user)).json()
    await service.armed(user, rules=1, price=Decimal("100"))

    pushed = time.monotonic()
    sim.set_price(BTC, Decimal("101.5"))
    await eventually(lambda: len(tg.texts(CHAT)) == 1, timeout=10, message="message sent")
    print(f"{layout}: push -> sendMessage {(tg.sent[-1].at - pushed) * 1000:.1f} ms")
    assert "BTC-USDT crossed 101 up: now 101.5" in tg.texts(CHAT)[0]

    event = (await client.get("/v1/events", headers=user)).json()["items"][0]
    assert event["rule_id"] == rule["id"]
    for _ in range(50):
        event = (await client.get(f"/v1/events/{event['id']}", headers=user)).json()
        if event["deliveries"][0]["status"] == "sent":
            break
        await asyncio.sleep(0.05)
    assert event["deliveries"][0]["status"] == "sent"

    # The engine's and the bot's heartbeats reached the API, from whichever process.
    await service.armed(user, rules=0, price=Decimal("101.5"))  # `once`: fired and disarmed
    checks = await service.checks()
    assert checks["feeds"]["connections"]["public"]["connected"] is True
    assert checks["bot"] == {"ok": True}

    # One /metrics for `alerts run`; in the split layout the API's (the queue's depth), the
    # engine's and each worker's (ALERTS_METRICS_ADDRESS), which together say the same.
    pages = [(await client.get("/metrics")).text]
    for process in service.deployment.processes:
        if process.metrics is not None:
            pages.append((await client.get(process.metrics)).text)
    families: dict[str, list[Sample]] = {}
    for page in pages:
        for family in text_string_to_metric_families(page):
            families.setdefault(family.name, []).extend(family.samples)
    for name in METRICS:
        assert name in families, name
    ticker = {"connection": "public", "channel": "ticker"}
    assert any(s.labels == ticker and s.value >= 2 for s in families["alerts_pushes"])
    firings = families["alerts_firings"]
    assert any(s.labels == {"kind": "price_cross"} and s.value == 1 for s in firings)
    sent = families["alerts_deliveries"]
    assert any(s.labels == {"target": "telegram", "outcome": "sent"} for s in sent)
    latency = families["alerts_delivery_latency_seconds"]
    assert sum(s.value for s in latency if s.name.endswith("_count")) == 1


async def test_alerts_fired_by_one_push_reach_a_chat_as_one_digest(service: Service) -> None:
    client, tg = service.client, service.tg
    user = await service.user()
    for level in range(101, 109):  # more than a few (5): a digest, not eight messages
        body = {"kind": "price_cross", "symbol": BTC, "level": str(level)}
        assert (await client.post("/v1/rules", json=body, headers=user)).status_code == 201
    await service.armed(user, rules=8, price=Decimal("100"))

    service.sim.set_price(BTC, Decimal("109"))
    await eventually(lambda: len(tg.texts(CHAT)) >= 1, timeout=10, message="the digest")
    await asyncio.sleep(1.5)  # anything sent apart would have come by now (1 message/s)
    [digest] = tg.texts(CHAT)
    assert digest.startswith("<b>🔔 8 alerts</b>")
    assert sorted(m[1] for m in CROSSED.finditer(digest)) == [str(n) for n in range(101, 109)]


async def test_mute_in_the_bot_holds_alerts_and_unmute_sends_one_summary(
    service: Service,
) -> None:
    tg, client = service.tg, service.client
    user = await service.user()  # the bot knows them by their Telegram id
    await tg.ask(CHAT, "/start")
    assert (await tg.ask(CHAT, "/mute 2h")).text.startswith("🔕 Muted until")
    await tg.ask(CHAT, "/alert BTC-USDT above 101")
    await tg.ask(CHAT, "/alert BTC-USDT above 102")
    await service.armed(user, rules=2, price=Decimal("100"))
    before = len(tg.texts(CHAT))

    service.sim.set_price(BTC, Decimal("103"))

    async def held() -> list[str]:
        events = (await client.get("/v1/events", headers=user)).json()["items"]
        return [d["status"] for e in events for d in e["deliveries"]]

    deadline = time.monotonic() + 10
    while len(await held()) < 2:
        assert time.monotonic() < deadline, "the alerts were not recorded"
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # a worker that ignored the mute would have sent by now
    assert len(tg.texts(CHAT)) == before, "nothing sent while muted"

    unmuted = await tg.ask(CHAT, "/unmute")
    assert unmuted.text.startswith("🔔 Unmuted. 2 held alert")
    await eventually(lambda: len(tg.texts(CHAT)) == before + 2, message="the summary")
    summary = tg.texts(CHAT)[-1]
    assert summary.startswith("<b>🔕 While muted: 2 alerts</b>")
    assert "crossed 101 up" in summary and "crossed 102 up" in summary
    deadline = time.monotonic() + 10
    while await held() != ["sent", "sent"]:
        assert time.monotonic() < deadline, "not recorded as sent"
        await asyncio.sleep(0.1)


async def test_a_blocked_chat_falls_back_to_a_signed_webhook(service: Service) -> None:
    client, sim, tg = service.client, service.sim, service.tg
    user = await service.user()
    [chat] = (await client.get("/v1/destinations", headers=user)).json()["items"]
    secret = "e2e-webhook-signing-secret"
    async with serving(Receiver()) as hook:
        body = {"kind": "webhook", "url": hook.url(scheme="http"), "secret": secret}
        r = await client.post("/v1/destinations", json=body, headers=user)
        assert r.status_code == 201, r.text
        webhook = r.json()["id"]
        body = {
            "kind": "price_cross",
            "symbol": BTC,
            "level": "101",
            "destination_ids": [chat["id"]],
            "fallback_destination_ids": [webhook],
        }
        assert (await client.post("/v1/rules", json=body, headers=user)).status_code == 201
        await service.armed(user, rules=1, price=Decimal("100"))
        tg.fail_next(CHAT, status=403, description="Forbidden: bot was blocked by the user")
        sim.set_price(BTC, Decimal("101.5"))
        await eventually(lambda: len(hook.bodies) == 1, timeout=15, message="webhook called")
        [headers], [raw], [sent] = hook.headers, hook.raw, hook.bodies
        assert documented_verify()(secret, headers["X-Alerts-Signature"], raw)
        assert sent["fallback"] is True and sent["values"]["price"] == "101.5"

        async def both_shown() -> bool:
            events = (await client.get("/v1/events", headers=user)).json()["items"]
            shown = [(d["destination_id"], d["status"], d["fallback"]) for d in
                     events[0]["deliveries"]]  # fmt: skip
            return shown == [(chat["id"], "dead", False), (webhook, "sent", True)]

        deadline = time.monotonic() + 10
        while not await both_shown():
            assert time.monotonic() < deadline, "the event does not show both deliveries"
            await asyncio.sleep(0.1)
    assert tg.texts(CHAT) == []
