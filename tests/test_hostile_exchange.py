"""Nothing the exchange sends stops alerting: `alerts run` over real sockets, on SQLite and
PostgreSQL, is sent each shape that once stopped or corrupted recording, and after each one a
normal crossing must reach the fake Bot API within 2 s."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.simulator import Simulator, SimulatorConfig
from tests.deployments import Layout, deployed
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually

ADMIN = "hostile-admin"
CHAT = 777
BTC = "BTC-USDT"


def _push(channel: str, data: str, symbol: str = BTC) -> str:
    """A push frame with `data` spliced in as raw JSON text (numbers JSON cannot carry)."""
    head = json.dumps({"channel": channel, "symbol": symbol})[:-1]
    return f'{{"method": "subscription", "params": {head}, "data": {data}}}}}'


def _ticker(last: str, symbol: str = BTC) -> str:
    return _push("ticker", f'{{"symbol": {json.dumps(symbol)}, "lastPrice": {last}}}', symbol)


SHAPES = {
    "a 500-character trade id": _push(
        "trades",
        json.dumps([{"id": "t" * 500, "symbol": BTC, "price": "150", "quantity": "2"}]),
    ),
    "a 305-character symbol": _ticker('"1"', symbol="S" * 305),
    "1e5000000": _ticker("1e5000000"),
    "-1e-5000000": _ticker('"-1e-5000000"'),
    "NaN": _ticker('"NaN"'),
    "a 10,000-digit price": _ticker('"' + "7" * 10_000 + '"'),
}


@dataclass
class Service:
    sim: Simulator
    tg: FakeTelegram
    client: httpx.AsyncClient
    user: dict[str, str]


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[Service]:
    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim, FakeTelegram() as tg:
        sim.set_price(BTC, Decimal(100))
        env = {
            "XROCKET_WS_URL": sim.url,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.url,
            "ALERTS_ADMIN_TOKEN": ADMIN,
            "ALERTS_LOG_LEVEL": "WARNING",
        }
        run = Layout("run", database_url)
        async with deployed(run, env) as deployment, deployment.client as client:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            r = await client.post(
                "/v1/users", json={"name": "t", "telegram_user_id": CHAT}, headers=admin
            )
            user = {"Authorization": f"Bearer {r.json()['api_key']}"}
            r = await client.post("/v1/destinations", json={"kind": "telegram"}, headers=user)
            assert r.status_code == 201, r.text
            yield Service(sim, tg, client, user)
    deployment.assert_clean_exit(TOKEN)


async def test_after_each_hostile_push_the_next_crossing_is_delivered_within_2_s(
    service: Service,
) -> None:
    sim, tg, client, user = service.sim, service.tg, service.client, service.user
    rules = [
        # Beside the crossings: a percent move rule (whose arithmetic a huge price broke)
        # and a large-trade rule (whose 500-character trade id broke recording).
        {"kind": "percent_change", "symbol": BTC, "percent": "900", "window_seconds": 3600},
        {"kind": "large_trade", "symbol": BTC, "min_quantity": "1", "trigger": "every"},
    ]
    levels = [100 + 10 * i + 5 for i in range(len(SHAPES))]
    rules += [{"kind": "price_cross", "symbol": BTC, "level": str(level)} for level in levels]
    for body in rules:
        r = await client.post("/v1/rules", json=body, headers=user)
        assert r.status_code == 201, r.text

    def subscribed() -> bool:
        keys = {k[:2] for ks in sim.subscriptions() for k in ks}
        return {("ticker", BTC), ("trades", BTC)} <= keys

    await eventually(subscribed, timeout=10, message="the engine subscribed")
    await asyncio.sleep(0.3)  # the engine has armed every rule it subscribed for
    for (shape, frame), level in zip(SHAPES.items(), levels, strict=True):
        assert sim.send_raw(frame) >= 1
        await asyncio.sleep(0.05)
        pushed = time.monotonic()
        sim.set_price(BTC, Decimal(level + 5))
        await eventually(
            lambda level=level: any(f"crossed {level} up" in t for t in tg.texts(CHAT)),
            timeout=2,
            message=f"the crossing after {shape}",
        )
        print(f"after {shape}: delivered in {(time.monotonic() - pushed) * 1000:.0f} ms")
    texts = tg.texts(CHAT)
    assert len(texts) == len(levels)  # nothing else fired: no 1e5000000, no huge trade
    assert all(len(t) < 500 for t in texts)

    ready = await client.get("/readyz")
    for _ in range(50):
        if ready.status_code == 200:
            break
        await asyncio.sleep(0.1)
        ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["recording"] == {
        "ok": True,
        "failing_for": 0.0,
        "dead_letters_last_minute": 0,
    }
    metrics = (await client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    refused = {
        (s.labels["channel"], s.labels["reason"]): s.value
        for s in families["alerts_pushes_refused"].samples
        if s.name.endswith("_total")
    }
    assert refused[("trades", "id too long")] == 1
    assert refused[("ticker", "bad symbol")] == 1
    assert refused[("ticker", "number out of range")] >= 1
    assert refused[("ticker", "negative number")] == 1
    assert refused[("ticker", "not a finite number")] == 1
    assert refused[("ticker", "number too long")] == 1
    for name in ("alerts_rules_skipped", "alerts_recorder_failures", "alerts_dead_letters"):
        assert name in families, name
