"""Several processes on PostgreSQL, as deployed: `alerts api`, two `alerts engine` (one leads,
one waits on standby) and two `alerts worker`. Rules are created over REST and prices driven
from the simulator; the leading engine and one worker are killed with SIGKILL halfway. Every
alert must still arrive, no rule may fire twice, and the standby takes over (time printed)."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from alerts.db.migrate import upgrade
from alerts.simulator import Simulator, SimulatorConfig
from tests.conftest import _postgres_database
from tests.deployments import Process
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually
from tests.test_cli import free_port

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "deployment-admin"
CHAT = 31337
LEVELS = [Decimal(101 + i) for i in range(20)]
CROSSED = re.compile(r"crossed (\d+) up")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_database()


async def test_standby_engine_and_workers_survive_sigkill(postgres_url: str) -> None:
    upgrade(postgres_url)
    port = free_port()
    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim, FakeTelegram() as tg:
        sim.set_price("BTC-USDT", Decimal("100"))
        env = {
            **os.environ,
            "DATABASE_URL": postgres_url,
            "XROCKET_WS_URL": sim.url,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": tg.url,
            "ALERTS_ADMIN_TOKEN": ADMIN,
            "ALERTS_DELIVERY_LEASE": "2",
        }
        processes = [
            await Process.start("api", "--port", str(port), env=env),
            await Process.start("engine", env=env),
            await Process.start("engine", env=env),
            await Process.start("worker", env=env),
            await Process.start("worker", env=env),
        ]
        api, engines, workers = processes[0], processes[1:3], processes[3:]
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                await _wait_for_api(client, api)
                user = await _user_with_chat(client)
                rule_ids = []
                for level in LEVELS:
                    body = {"kind": "price_cross", "symbol": "BTC-USDT", "level": str(level)}
                    r = await client.post("/v1/rules", json=body, headers=user)
                    rule_ids.append(r.json()["id"])

                def leader() -> Process | None:
                    leading = [e for e in engines if "this engine leads" in e.log]
                    return leading[0] if len(leading) == 1 else None

                await eventually(lambda: leader() is not None, timeout=60, message="a leader")
                await eventually(
                    lambda: all("delivery worker running" in w.log for w in workers),
                    timeout=60,
                    message="both workers running",
                )
                await eventually(lambda: _subscribed(sim), timeout=20, message="subscribed")
                await _walk(sim, Decimal("100.5"), 10)  # crosses the first ten levels
                await eventually(lambda: len(tg.texts(CHAT)) >= 5, timeout=30, message="alerts")

                old = leader()
                assert old is not None
                standby = next(e for e in engines if e is not old)
                old.proc.kill()
                workers[0].proc.kill()
                killed = time.monotonic()
                await eventually(
                    lambda: "this engine leads" in standby.log, timeout=20, message="takeover"
                )
                print(f"standby engine took over {time.monotonic() - killed:.2f} s after SIGKILL")
                await _walk(sim, Decimal("110.5"), 10)  # crosses the other ten

                def delivered() -> set[str]:
                    return {m[1] for t in tg.texts(CHAT) for m in CROSSED.finditer(t)}

                await eventually(
                    lambda: len(delivered()) == 20, timeout=30, message="every alert delivered"
                )
                events = (await client.get("/v1/events?limit=100", headers=user)).json()["items"]
                fired = [e["rule_id"] for e in events]
                assert sorted(fired) == sorted(rule_ids), "each rule fired exactly once"
                levels = [m[1] for t in tg.texts(CHAT) for m in CROSSED.finditer(t)]
                print(f"20 alerts, {len(levels) - 20} delivered twice")
        except BaseException:
            for process in processes:  # what each process said, to tell why
                code = process.proc.returncode
                print(f"--- alerts {process.role} (exit {code}) ---\n{process.log[-3000:]}")
            raise
        finally:
            for process in processes:
                await process.stop()
        for process in (api, standby, workers[1]):
            assert process.proc.returncode == 0, process.log[-2000:]
            assert TOKEN not in process.log


async def _wait_for_api(client: httpx.AsyncClient, api: Process) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if (await client.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert api.proc.returncode is None, api.log
        assert time.monotonic() < deadline, "the API did not start"
        await asyncio.sleep(0.1)


async def _user_with_chat(client: httpx.AsyncClient) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    body = {"name": "trader", "telegram_user_id": CHAT}
    r = await client.post("/v1/users", json=body, headers=admin)
    user = {"Authorization": f"Bearer {r.json()['api_key']}"}
    r = await client.post(
        "/v1/destinations", json={"kind": "telegram", "chat_id": CHAT}, headers=user
    )
    assert r.status_code == 201
    return user


def _subscribed(sim: Simulator) -> bool:
    return any(k[:2] == ("ticker", "BTC-USDT") for ks in sim.subscriptions() for k in ks)


async def _walk(sim: Simulator, start: Decimal, steps: int) -> None:
    for i in range(1, steps + 1):
        sim.set_price("BTC-USDT", start + i)
        await asyncio.sleep(0.2)
