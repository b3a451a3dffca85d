"""`alerts run` end to end: a rule created over REST, a price crossing from the simulator, and
the message arriving at a fake Bot API server; then Ctrl-C stops the process cleanly."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from alerts.simulator import Simulator, SimulatorConfig
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually
from tests.run_helpers import alerts_run
from tests.test_cli import free_port

ADMIN = "run-e2e-admin"
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


async def test_alerts_run_delivers_a_crossing_to_telegram(tmp_path: Path) -> None:
    port = free_port()
    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim, FakeTelegram() as tg:
        sim.set_price("BTC-USDT", Decimal("69990"))
        env = {
            "DATABASE_URL": f"sqlite:///{tmp_path}/run.db",
            "XROCKET_WS_URL": sim.url,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.url,
            "ALERTS_ADMIN_TOKEN": ADMIN,
        }
        async with alerts_run(env, port) as run:
            client = run.client
            admin = {"Authorization": f"Bearer {ADMIN}"}
            r = await client.post(
                "/v1/users", json={"name": "alice", "telegram_user_id": 777}, headers=admin
            )
            user = {"Authorization": f"Bearer {r.json()['api_key']}"}
            r = await client.post(
                "/v1/destinations", json={"kind": "telegram", "chat_id": 777}, headers=user
            )
            assert r.status_code == 201
            body = {"kind": "price_cross", "symbol": "BTC-USDT", "level": "70000"}
            rule = (await client.post("/v1/rules", json=body, headers=user)).json()

            def subscribed() -> bool:
                return any(
                    k[:2] == ("ticker", "BTC-USDT") for ks in sim.subscriptions() for k in ks
                )

            await eventually(subscribed, timeout=5, message="the engine subscribed")
            pushed = time.monotonic()
            sim.set_price("BTC-USDT", Decimal("70010"))
            await eventually(lambda: len(tg.sent) == 1, timeout=10, message="message sent")
            latency = tg.sent[0].at - pushed
            print(f"push -> sendMessage: {latency * 1000:.1f} ms")
            assert "BTC-USDT crossed 70000 up: now 70010" in tg.sent[0].text
            assert tg.sent[0].chat_id == 777

            event = (await client.get("/v1/events", headers=user)).json()["items"][0]
            assert event["rule_id"] == rule["id"]
            for _ in range(50):
                event = (await client.get(f"/v1/events/{event['id']}", headers=user)).json()
                if event["deliveries"][0]["status"] == "sent":
                    break
                await asyncio.sleep(0.05)
            assert event["deliveries"][0]["status"] == "sent"

            async def ready() -> dict[str, Any]:
                for _ in range(100):
                    r = await client.get("/readyz")
                    if r.status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                assert r.status_code == 200, r.text
                return dict(r.json()["checks"])

            checks = await ready()  # the engine's and the bot's heartbeats reached it
            assert checks["feeds"]["connections"]["public"]["connected"] is True
            assert checks["feeds"]["rules"] == 0  # `once`: the rule fired and disarmed
            assert checks["bot"] == {"ok": True}

            r = await client.get("/metrics")
            families = {f.name: f for f in text_string_to_metric_families(r.text)}
            for name in METRICS:
                assert name in families, name
            pushes = families["alerts_pushes"].samples
            ticker = {"connection": "public", "channel": "ticker"}
            assert any(s.labels == ticker and s.value >= 2 for s in pushes)
            firings = families["alerts_firings"].samples
            assert any(s.labels == {"kind": "price_cross"} and s.value == 1 for s in firings)
            sent = families["alerts_deliveries"].samples
            assert any(s.labels == {"target": "telegram", "outcome": "sent"} for s in sent)
            latency = families["alerts_delivery_latency_seconds"].samples
            assert any(s.name.endswith("_count") and s.value == 1 for s in latency)
    assert run.returncode == 0, run.stderr[-2000:]
    assert TOKEN not in run.stderr
