"""Several `alerts worker` processes on one PostgreSQL database sending one push's alerts to
many chats, against a fake Bot API in its own process that answers 429 to anything over
Telegram's limits: shared by the test (`test_telegram_workers.py`) and the benchmark
(`bench/telegram_workers.py`)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from alerts.db.migrate import upgrade
from alerts.db.models import Destination, Rule, RuleDestination, User
from alerts.db.recording import record
from alerts.db.session import Database
from alerts.domain.hits import Hit
from tests.fake_telegram import TOKEN

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    sent: int  # messages the fake accepted
    chats: list[int]  # the chats they went to, each once if nothing was sent twice
    rejected: int  # 429s the fake answered
    rate: float  # messages/s from the first to the last
    expected: list[int]


def _setup(db: Database, chats: list[int]) -> list[Hit]:
    """A user with one rule per chat; the hits one push crossing every rule's level makes."""
    with db.session() as session:
        user = User(name="trader", telegram_user_id=chats[0])
        session.add(user)
        session.flush()
        assert user.id is not None
        destinations = [
            Destination(user_id=user.id, kind="telegram", name=f"c{c}", chat_id=c) for c in chats
        ]
        rules = [
            Rule(
                user_id=user.id,
                kind="price_cross",
                name=f"level {i}",
                symbol="BTC-USDT",
                params={"symbol": "BTC-USDT", "level": "70000"},
                trigger="every",
            )
            for i in range(len(chats))
        ]
        session.add_all([*destinations, *rules])
        session.flush()
        session.add_all(
            RuleDestination(rule_id=r.id or 0, destination_id=d.id or 0)
            for r, d in zip(rules, destinations, strict=True)
        )
        session.commit()
        ids = [r.id or 0 for r in rules]
    now = datetime.now(UTC)
    values = {"symbol": "BTC-USDT", "price": "70001", "previous": "69999", "level": "70000"}
    return [
        Hit(
            rule_id=rule_id,
            user_id=0,
            kind="price_cross",
            symbol="BTC-USDT",
            values={**values, "direction": "up", "time": now.isoformat()},
            fired_at=now,
            once=False,
        )
        for rule_id in ids
    ]


async def wait_for_fake(client: httpx.AsyncClient) -> None:
    """Until the fake Bot API in its own process answers /stats."""
    for _ in range(200):
        try:
            await client.get("/stats")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.05)
    raise AssertionError("the fake Bot API did not start")


async def _logged(proc: asyncio.subprocess.Process, text: str, timeout: float) -> str:
    """Read `proc`'s stderr until a line holds `text`; what was read."""
    assert proc.stderr is not None
    seen = ""
    async with asyncio.timeout(timeout):
        while text not in seen:
            line = await proc.stderr.readline()
            if not line:
                raise AssertionError(f"the worker exited before saying {text!r}:\n{seen}")
            seen += line.decode(errors="replace")
    return seen


async def run(database_url: str, chats: list[int], *, workers: int, port: int) -> Result:
    """One push's alerts to `chats`, sent by `workers` processes; what the fake received.
    Telegram's real limits, on both sides."""
    upgrade(database_url)
    db = Database(database_url)
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fake_telegram", str(port), "1", cwd=ROOT
    )
    env: dict[str, Any] = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": f"http://127.0.0.1:{port}",
        "ALERTS_LOG_LEVEL": "INFO",
    }
    procs: list[asyncio.subprocess.Process] = []
    drains: list[asyncio.Task[bytes]] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            await wait_for_fake(client)
            command = [sys.executable, "-m", "alerts.cli", "worker"]
            for _ in range(workers):
                proc = await asyncio.create_subprocess_exec(
                    *command, cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
                )
                procs.append(proc)
            for proc in procs:
                await _logged(proc, "delivery worker running", 60)
                # Read on, so that a full pipe never blocks a worker's logging.
                assert proc.stderr is not None
                drains.append(asyncio.create_task(proc.stderr.read()))
            hits = _setup(db, chats)
            await asyncio.to_thread(record, db, hits, {}, {}, datetime.now(UTC))
            stats: dict[str, Any] = {}
            for _ in range(int(len(chats) / 30 * 4) + 200):  # 4x the time 30/s takes, at most
                stats = (await client.get("/stats")).json()
                if stats["sent"] >= len(chats):
                    break
                await asyncio.sleep(0.25)
            await asyncio.sleep(1.0)  # anything sent twice arrives meanwhile
            stats = (await client.get("/stats")).json()
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            await proc.wait()
        await asyncio.gather(*drains, return_exceptions=True)
        if fake.returncode is None:
            fake.terminate()
        await fake.wait()
        db.dispose()
    first, last = stats.get("first"), stats.get("last")
    rate = (stats["sent"] - 1) / (last - first) if first is not None and last != first else 0.0
    return Result(stats["sent"], stats["chats"], stats["rejected"], rate, sorted(chats))
