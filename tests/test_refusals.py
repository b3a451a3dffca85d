"""Subscriptions the exchange refuses: backed off per subscription up to an hour, all retries
together within a budget, and the rules on a refused symbol showing why (over REST) with
their owner told once. The engine test runs against the simulator over a real socket, with
time scaled down: a "minute" of 0.3 s."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlmodel import select

from alerts.db.migrate import upgrade
from alerts.db.models import Event, SymbolStatus
from alerts.db.session import Database
from alerts.engine.refusals import NOT_FOUND, Refusals
from alerts.engine.runner import Engine, EngineConfig
from alerts.feed import Backoff, Subscription
from alerts.feed.errors import IntervalTooBig, SymbolNotFound
from alerts.security import SecretBox
from alerts.simulator import Simulator, SimulatorConfig
from api.app import create_app
from tests.api_helpers import ADMIN_TOKEN, SECRET_KEY, make_settings
from tests.feed_helpers import eventually, fast_config

MINUTE = 0.3  # the engine test's minute


def test_each_refusal_backs_off_to_an_hour_and_all_retries_share_a_budget() -> None:
    now = [0.0]
    refusals = Refusals(
        backoff=Backoff(initial=60, maximum=3600, factor=2, jitter=0),
        per_window=5,
        window=60,
        clock=lambda: now[0],
    )
    subs = [Subscription.ticker(f"NOPE{i}-USDT") for i in range(100)]
    assert all(refusals.may_ask(s) for s in subs)  # never refused: asked at once
    for sub in subs:
        refusals.refused(sub, SymbolNotFound())
    assert refusals.to_report == {s.symbol: NOT_FOUND for s in subs if s.symbol}
    asked_at: dict[Subscription, list[float]] = {s: [0.0] for s in subs}
    per_minute = []
    for minute in range(1, 24 * 60):  # a day, a minute at a time
        now[0] = minute * 60.0
        asked = [s for s in subs if refusals.may_ask(s)]
        per_minute.append(len(asked))
        for sub in asked:
            asked_at[sub].append(now[0])
            refusals.refused(sub, SymbolNotFound())
    assert max(per_minute) <= 5  # the budget holds, whatever the number of refusals
    gaps = [b - a for times in asked_at.values() for a, b in itertools.pairwise(times)]
    # A minute at first, doubling to an hour; a hundred hourly retries share 5 a minute, so
    # some wait their turn (at most the 20 minutes a hundred take).
    assert min(gaps) >= 60 and max(gaps) <= 2 * 3600
    # Later retries are an hour apart: the budget is far from used up.
    assert sum(per_minute[-60:]) <= 100 + 5

    refusals.to_report.clear()
    refusals.subscribed(subs[0])
    assert refusals.to_report == {subs[0].symbol: None} and refusals.may_ask(subs[0])
    other = Subscription.candles("BTC-USDT", "1week")
    refusals.refused(other, IntervalTooBig())  # backs off, but says nothing of the symbol
    assert other in refusals and "BTC-USDT" not in refusals.to_report


@pytest.fixture
async def engine_and_api(database_url: str) -> AsyncIterator[tuple[Engine, Simulator, dict]]:
    upgrade(database_url)
    db = Database(database_url)
    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim:
        sim.set_price("BTC-USDT", Decimal(100))
        settings = make_settings(database_url, sim.url)
        app = create_app(settings, db=db)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            r = await client.post(
                "/v1/users",
                json={"name": "alice", "telegram_user_id": 900},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            headers = {"Authorization": f"Bearer {r.json()['api_key']}"}
            rules = {}
            for i in range(100):
                body = {"kind": "price_cross", "symbol": f"NOPE{i}-USDT", "level": "1"}
                rules[f"NOPE{i}-USDT"] = (
                    await client.post("/v1/rules", json=body, headers=headers)
                ).json()
            body = {"kind": "price_cross", "symbol": "BTC-USDT", "level": "105"}
            rules["BTC-USDT"] = (await client.post("/v1/rules", json=body, headers=headers)).json()
            config = EngineConfig(
                feed=fast_config(sim.url),
                poll_interval=0.02,
                flush_interval=0.02,
                refusals=lambda: Refusals(
                    backoff=Backoff(initial=MINUTE, maximum=60 * MINUTE, factor=2, jitter=0.1),
                    per_window=5,
                    window=MINUTE,
                ),
            )
            engine = Engine(db, config, SecretBox(SECRET_KEY))
            await engine.start()
            try:
                yield engine, sim, {"client": client, "headers": headers, "rules": rules, "db": db}
            finally:
                await engine.stop()
    db.dispose()


async def test_rules_on_refused_symbols_cost_a_few_requests_and_say_why(
    engine_and_api: tuple[Engine, Simulator, dict],
) -> None:
    _engine, sim, world = engine_and_api
    db: Database = world["db"]

    def nope_subscribes() -> int:
        return sum(
            1
            for method, params in sim.requests
            if method == "subscribe" and str(params.get("symbol", "")).startswith("NOPE")
        )

    await eventually(lambda: nope_subscribes() >= 100, timeout=5, message="first asks")
    started = time.monotonic()
    await asyncio.sleep(MINUTE)  # the first minute: every symbol asked once
    after_first = nope_subscribes()
    await asyncio.sleep(4 * MINUTE)
    later = nope_subscribes() - after_first
    minutes = (time.monotonic() - started - MINUTE) / MINUTE
    print(f"{later} subscribe requests in {minutes:.1f} scaled minutes after the first")
    assert later / minutes < 10

    # The rules show why; the owner was told once per symbol, however often it was refused.
    client, headers = world["client"], world["headers"]
    rule = world["rules"]["NOPE7-USDT"]
    await eventually(lambda: _statuses(db) == 100, timeout=5, message="statuses stored")
    r = await client.get(f"/v1/rules/{rule['id']}", headers=headers)
    assert r.json()["status"] == "symbol not found on the exchange"
    listed = (await client.get("/v1/rules", params={"limit": 200}, headers=headers)).json()
    statuses = {item["symbol"]: item["status"] for item in listed["items"]}
    assert statuses["BTC-USDT"] is None and statuses["NOPE0-USDT"] == NOT_FOUND
    with db.session() as session:
        notices = session.exec(select(Event).where(Event.kind == "symbol_refused")).all()
    assert len(notices) == 100 and {e.symbol for e in notices} == set(statuses) - {"BTC-USDT"}

    # And the rules on the symbol the exchange does list work as ever.
    sim.set_price("BTC-USDT", Decimal(106))
    btc = world["rules"]["BTC-USDT"]["id"]

    def fired() -> bool:
        with db.session() as session:
            return bool(session.exec(select(Event).where(Event.rule_id == btc)).all())

    await eventually(fired, timeout=5, message="the BTC crossing")


def _statuses(db: Database) -> int:
    with db.session() as session:
        return len(session.exec(select(SymbolStatus)).all())
