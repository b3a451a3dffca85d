"""REST API benchmark: list latency at 1,000,000 rules and rule creation rate (SQLite).

Fills a fresh SQLite database with 1,000,000 rules spread over 10,000 users, starts
`alerts api` (one uvicorn worker) and measures over real HTTP on loopback:

- the latency of GET /v1/rules (one page of 50) for random users, plain and filtered;
- rules created per second by POST /v1/rules from 8 concurrent clients.

Goals (issue 3): list p50 <= 20 ms at 1M rules; creation >= 500 rules/s.

    .venv/bin/python bench/api.py [--rules 1000000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
from sqlalchemy import insert

from alerts.db.migrate import upgrade
from alerts.db.models import ApiKey, Rule, User
from alerts.db.session import make_engine
from alerts.security import hash_api_key, key_hint

USERS = 10_000
SYMBOLS = [f"SYM{i}-USDT" for i in range(200)]
KINDS = ["price_cross", "price_range", "spread"]
ADMIN = "bench-admin-token"


def _key(user: int) -> str:
    return f"xra_bench_key_{user:06d}"


def fill(url: str, rules: int) -> float:
    """Insert users, keys and `rules` rules directly; returns seconds taken."""
    started = time.perf_counter()
    engine = make_engine(url)
    now = datetime.now(UTC)
    rng = random.Random(7)
    with engine.begin() as conn:
        conn.execute(
            insert(User),
            [{"id": u, "name": f"user{u}", "created_at": now} for u in range(1, USERS + 1)],
        )
        conn.execute(
            insert(ApiKey),
            [
                {
                    "user_id": u,
                    "name": "bench",
                    "hint": key_hint(_key(u)),
                    "key_hash": hash_api_key(_key(u)),
                    "created_at": now,
                }
                for u in range(1, USERS + 1)
            ],
        )
    batch = 50_000
    for start in range(0, rules, batch):
        rows = []
        for i in range(start, min(start + batch, rules)):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            level = f"{rng.randint(1, 100_000)}.{rng.randint(0, 99):02d}"
            rows.append(
                {
                    "user_id": i % USERS + 1,
                    "kind": "price_cross",
                    "name": f"{symbol} crosses {level}",
                    "symbol": symbol,
                    "params": {
                        "symbol": symbol,
                        "level": level,
                        "direction": "any",
                        "source": "last",
                    },
                    "trigger": "once",
                    "cooldown_seconds": 300,
                    "enabled": i % 10 != 0,
                    "fire_count": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(Rule), rows)
    engine.dispose()
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_api(url: str, port: int) -> subprocess.Popen[bytes]:
    """`alerts api` in a subprocess, ready to serve."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "ALERTS_ADMIN_TOKEN": ADMIN,
        "ALERTS_LOG_LEVEL": "WARNING",
        # The benchmark measures the API, not its per-key request limit.
        "ALERTS_API_REQUESTS_PER_MINUTE": "1000000",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "alerts.cli", "api", "--port", str(port)], env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the API did not start")


def list_latency(base: str, requests: int) -> dict[str, list[float]]:
    """Milliseconds per GET /v1/rules page, for random users, by filter."""
    rng = random.Random(11)
    results: dict[str, list[float]] = {"first page": [], "next page": [], "symbol": [], "kind": []}
    with httpx.Client(base_url=base, timeout=10) as client:
        for _ in range(requests):
            user = rng.randint(1, USERS)
            headers = {"Authorization": f"Bearer {_key(user)}"}
            for label, params in (
                ("first page", {"limit": 50}),
                ("symbol", {"symbol": rng.choice(SYMBOLS), "limit": 50}),
                ("kind", {"kind": "price_cross", "enabled": "true", "limit": 50}),
            ):
                started = time.perf_counter()
                r = client.get("/v1/rules", params=params, headers=headers)
                results[label].append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200, r.text
                if label == "first page" and r.json()["next_cursor"]:
                    started = time.perf_counter()
                    page = client.get(
                        "/v1/rules",
                        params={"limit": 50, "cursor": r.json()["next_cursor"]},
                        headers=headers,
                    )
                    results["next page"].append((time.perf_counter() - started) * 1000)
                    assert page.status_code == 200
    return results


async def create_rate(base: str, seconds: float, clients: int = 8) -> tuple[int, float]:
    """Rules created per second by `clients` concurrent connections.

    The load comes from aiohttp, whose client costs a fraction of httpx's CPU per request:
    on two cores the load generator shares the machine with the server it measures.
    """
    created = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal created
        rng = random.Random(n)
        headers = {"Authorization": f"Bearer {_key(n + 1)}"}
        while time.perf_counter() < deadline:
            body = {
                "kind": "price_cross",
                "symbol": rng.choice(SYMBOLS),
                "level": f"{rng.randint(1, 100_000)}.5",
                "direction": "up",
            }
            async with session.post(f"{base}/v1/rules", json=body, headers=headers) as r:
                assert r.status == 201, await r.text()
                await r.read()
            created += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session, n) for n in range(clients)))
    return created, time.perf_counter() - started


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        fill_seconds = fill(url, args.rules)
        size = (Path(tmp) / "bench.db").stat().st_size
        print(
            f"filled {args.rules:,} rules for {USERS:,} users in {fill_seconds:.1f} s "
            f"({size / 2**20:.0f} MiB)"
        )
        port = _free_port()
        process = start_api(url, port)
        try:
            base = f"http://127.0.0.1:{port}"
            latencies = list_latency(base, args.requests)
            print(f"\nGET /v1/rules, one page of 50, {args.rules:,} rules in the table:")
            print(f"  {'query':<12} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
            for label, values in latencies.items():
                if not values:
                    continue
                print(
                    f"  {label:<12} {len(values):>5} {statistics.median(values):>8.2f} "
                    f"{_pct(values, 0.9):>8.2f} {_pct(values, 0.99):>8.2f}"
                )
            p50 = statistics.median(latencies["first page"])
            created, elapsed = asyncio.run(create_rate(base, args.seconds))
            rate = created / elapsed
        finally:
            process.terminate()
            process.wait(10)
    print(f"\nPOST /v1/rules: {created:,} rules in {elapsed:.1f} s = {rate:.0f} rules/s")
    print(f"\nlist p50 {p50:.2f} ms vs goal 20 ms: ratio {p50 / 20:.2f} (<= 1.00 meets it)")
    print(f"create {rate:.0f}/s vs goal 500/s: ratio {rate / 500:.2f} (>= 1.00 meets it)")


if __name__ == "__main__":
    main()
