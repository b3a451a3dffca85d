"""The `alerts` console script, run as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
from sqlalchemy import create_engine, inspect
from sqlmodel import select

from alerts.domain.events import Ticker
from alerts.feed import FeedClient, Subscription
from tests.feed_helpers import Collector, eventually, fast_config, running

ALERTS = [sys.executable, "-m", "alerts.cli"]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ALERTS, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_help_lists_every_contract_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("run", "api", "engine", "worker", "bot", "simulate", "demo", "db"):
        assert command in result.stdout


def test_bot_without_a_token_says_what_to_set() -> None:
    result = run_cli("bot", env={"TELEGRAM_BOT_TOKEN": ""})
    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in result.stderr


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    env = {"ALERTS_LOG_FORMAT": "json", "DATABASE_URL": f"sqlite:///{tmp_path}/logs.db"}
    result = run_cli("api", "--port", "1", env=env)  # not migrated: logs nothing, says why
    assert result.returncode == 2
    result = run_cli("db", "upgrade", env={**env, "ALERTS_LOG_LEVEL": "INFO"})
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(set(e) >= {"time", "level", "logger", "message"} for e in lines)
    assert any(e["logger"].startswith("alembic") for e in lines)


def test_bad_configuration_is_named_without_echoing_values() -> None:
    result = run_cli("simulate", env={"XROCKET_WS_URL": "http://secret-host.invalid/abc"})
    assert result.returncode == 2
    assert "XROCKET_WS_URL" in result.stderr
    assert "secret-host" not in result.stderr


def test_simulate_rejects_bad_options() -> None:
    result = run_cli("simulate", "--malformed-rate", "2")
    assert result.returncode == 2
    assert "--malformed-rate" in result.stderr


async def test_simulate_serves_the_feed_client(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "script.json"
    script.write_text('{"BTC-USDT": ["71000.5", "71001.5"]}')
    proc = await asyncio.create_subprocess_exec(
        *ALERTS,
        "simulate",
        "--port",
        str(port),
        "--tick-interval",
        "0.05",
        "--script",
        str(script),
        "--seed",
        "3",
    )
    try:
        sink = Collector()
        client = FeedClient(fast_config(f"ws://127.0.0.1:{port}/"), sink)

        await client.subscribe(Subscription.ticker("BTC-USDT"))
        async with running(client):
            await eventually(
                lambda: {t.last for t in sink.of(Ticker)} >= {Decimal("71000.5")},
                timeout=20,
                message="scripted price from `alerts simulate`",
            )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            symbols = (await http.get("/api/v1/symbols")).json()["data"]  # REST, same port
            assert "BTC-USDT" in {s["symbol"] for s in symbols}
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


def test_db_upgrade_migrates_an_empty_database(database_url: str) -> None:
    result = run_cli("db", "upgrade", env={"DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    engine = create_engine(database_url)
    try:
        assert "alembic_version" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_worker_whose_metrics_port_is_taken_says_so(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'metrics.db'}"
    assert run_cli("db", "upgrade", env={"DATABASE_URL": database_url}).returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        env = {"DATABASE_URL": database_url, "ALERTS_METRICS_ADDRESS": f"127.0.0.1:{port}"}
        results = [run_cli(role, env=env) for role in ("worker", "engine")]
    for result in results:
        assert result.returncode == 4
        assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
        assert "Traceback" not in result.stderr


def test_simulate_on_a_taken_port_says_so() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run_cli("simulate", "--port", str(port))
    assert result.returncode == 4
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_api_serves_a_migrated_database(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path}/api.db"
    env = {**os.environ, "DATABASE_URL": database_url, "ALERTS_ADMIN_TOKEN": "cli-admin"}
    refused = run_cli("api", env={"DATABASE_URL": database_url})
    assert refused.returncode == 2 and "alerts db upgrade" in refused.stderr

    assert run_cli("db", "upgrade", env={"DATABASE_URL": database_url}).returncode == 0
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "alerts.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    health = client.get("/healthz")
                    break
                except httpx.TransportError:
                    assert process.poll() is None, process.communicate()[1]
                    assert time.monotonic() < deadline, "the API did not start"
                    time.sleep(0.1)
            assert health.json() == {"status": "ok"}
            created = client.post(
                "/v1/users", json={"name": "cli"}, headers={"Authorization": "Bearer cli-admin"}
            )
            assert created.status_code == 201
            assert client.get("/docs").status_code == 200
    finally:
        process.terminate()
        process.wait(10)


async def test_engine_process_follows_rules_created_through_the_api(database_url: str) -> None:
    """`alerts engine` as its own process: rules from the database at start, and a rule the
    API creates meanwhile takes effect within a second; SIGTERM stops it cleanly."""
    from alerts.db.migrate import upgrade
    from alerts.db.models import Event, Rule, User
    from alerts.db.session import Database
    from alerts.simulator import Simulator, SimulatorConfig
    from api.app import create_app
    from tests.api_helpers import ADMIN_TOKEN, make_settings

    refused = run_cli("engine", env={"DATABASE_URL": database_url})
    assert refused.returncode == 2 and "alerts db upgrade" in refused.stderr
    upgrade(database_url)
    db = Database(database_url)
    with db.session() as session:
        user = User(name="cli")
        session.add(user)
        session.flush()
        params = {"symbol": "BTC-USDT", "level": "70500", "direction": "up", "source": "last"}
        rule = Rule(
            user_id=user.id or 0, kind="price_cross", name="x", symbol="BTC-USDT", params=params
        )
        session.add(rule)
        session.commit()

    def events() -> int:
        with db.session() as session:
            return len(session.exec(select(Event)).all())

    def subscribed(symbol: str) -> bool:
        return any(("ticker", symbol, "1day") == k for ks in sim.subscriptions() for k in ks)

    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim:
        sim.set_price("BTC-USDT", Decimal(70000))
        sim.set_price("TON-USDT", Decimal(5))
        env = {**os.environ, "DATABASE_URL": database_url, "XROCKET_WS_URL": sim.url}
        process = await asyncio.create_subprocess_exec(
            *ALERTS, "engine", env=env, stderr=asyncio.subprocess.PIPE
        )
        try:
            await eventually(lambda: subscribed("BTC-USDT"), timeout=20, message="started")
            sim.set_price("BTC-USDT", Decimal(71000))
            await eventually(lambda: events() == 1, timeout=10, message="the stored rule fired")

            app = create_app(make_settings(database_url, sim.url), db=db)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as api:
                admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                key = (await api.post("/v1/users", json={"name": "b"}, headers=admin)).json()
                body = {"kind": "price_cross", "symbol": "TON-USDT", "level": "6"}
                started = time.monotonic()
                r = await api.post(
                    "/v1/rules", json=body, headers={"Authorization": f"Bearer {key['api_key']}"}
                )
                assert r.status_code == 201
            await eventually(lambda: subscribed("TON-USDT"), timeout=1.0, message="live rule")
            print(f"rule created -> engine subscribed: {time.monotonic() - started:.3f} s")
            sim.set_price("TON-USDT", Decimal(7))
            await eventually(lambda: events() == 2, timeout=5, message="the new rule fired")
        finally:
            process.terminate()
            _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert b"armed 1 rules" in stderr
    db.dispose()
