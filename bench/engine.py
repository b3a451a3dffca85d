"""Engine throughput with 1,000 / 100,000 / 1,000,000 active price_cross rules.

The simulator runs in its own process (200 symbols, ticks as fast as it can) and streams
tickers over loopback. For each rule count this process measures, alternating:

- floor: the feed client alone on the same stream, events handed to a no-op sink;
- engine: the real `Engine` (rules loaded from SQLite, every push evaluated against the
  index, prices persisted), subscribed to the same 200 tickers.

Levels lie 100-1000x away from each symbol's price, so almost no push fires a rule: what is
measured is the cost of the rules that do *not* fire. It also reports the time to load the
rules at start and the engine's memory per rule (RSS growth while loading).

Goals (issue 4): at 1M rules >= 70% of the floor and >= 90% of the 1k-rule rate;
<= 600 bytes per rule; loading 1M rules <= 15 s.

    .venv/bin/python bench/engine.py [--seconds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from feed_throughput import Sample, free_port, parsed, wait_for_server

from alerts.db.migrate import upgrade
from alerts.db.session import Database
from alerts.domain.events import FeedEvent, Ticker
from alerts.engine.runner import Engine, EngineConfig
from alerts.feed import Backoff, FeedClient, FeedConfig, Subscription
from alerts.security import SecretBox
from alerts.simulator import generated_symbols

STAGES = (1_000, 100_000, 1_000_000)
USERS = 1_000


def rss() -> int:
    """This process's resident memory in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    return 0


async def current_prices(url: str, symbols: tuple[str, ...]) -> dict[str, Decimal]:
    """One ticker per symbol, to place levels away from the market."""
    prices: dict[str, Decimal] = {}

    def sink(event: FeedEvent) -> None:
        if isinstance(event, Ticker):
            prices[event.symbol] = event.last

    client = FeedClient(FeedConfig(url=url, backoff=Backoff(initial=0.05, maximum=1.0)), sink)
    for symbol in symbols:
        await client.subscribe(Subscription.ticker(symbol))
    task = asyncio.create_task(client.run())
    while len(prices) < len(symbols):
        await asyncio.sleep(0.05)
    await client.stop()
    await task
    return prices


def fill(path: Path, start: int, stop: int, prices: dict[str, Decimal], seed: int) -> None:
    """Insert rules start+1..stop straight through sqlite3 (the ORM would take minutes)."""
    rng = random.Random(seed)
    symbols = sorted(prices)
    now = "2026-11-23 12:00:00.000000"
    rows = []
    for i in range(start, stop):
        symbol = symbols[i % len(symbols)]
        # At this tick rate the random walk drifts tens of percent a minute: stay far away.
        factor = rng.uniform(0.001, 0.01) if rng.random() < 0.5 else rng.uniform(100, 1000)
        level = format((prices[symbol] * Decimal(str(round(factor, 4)))).normalize(), "f")
        params = json.dumps(
            {"symbol": symbol, "level": level, "direction": "any", "source": "last"}
        )
        rows.append(
            (
                i + 1,
                i % USERS + 1,
                "price_cross",
                f"r{i}",
                symbol,
                params,
                "once",
                300,
                1,
                0,
                now,
                now,
            )
        )
    with sqlite3.connect(path) as conn:
        if start == 0:
            conn.executemany(
                "INSERT INTO users (id, name, created_at) VALUES (?, ?, ?)",
                [(u, f"user{u}", now) for u in range(1, USERS + 1)],
            )
        conn.executemany(
            "INSERT INTO rules (id, user_id, kind, name, symbol, params, trigger,"
            " cooldown_seconds, enabled, fire_count, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


async def run_engine(
    db: Database, url: str, warmup: float, seconds: float
) -> tuple[Sample, float, int, int]:
    """(throughput sample, load seconds, RSS growth while loading, rules armed)."""
    gc.collect()
    before = rss()
    config = EngineConfig(feed=FeedConfig(url=url, backoff=Backoff(initial=0.05, maximum=1.0)))
    engine = Engine(db, config, SecretBox(None))
    started = time.perf_counter()
    await engine.start()
    load = time.perf_counter() - started
    gc.collect()
    grown = rss() - before
    while not engine.public.ready:
        await asyncio.sleep(0.01)
    await asyncio.sleep(warmup)
    stats = engine.public.state.channel("ticker")
    count0, cpu0, t0 = stats.events, time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    sample = Sample(stats.events - count0, time.perf_counter() - t0, time.process_time() - cpu0)
    armed = len(engine.evaluator.rules)
    await engine.stop()
    return sample, load, grown, armed


async def main() -> None:
    """Run every stage and print the figures and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    args = parser.parse_args()

    port = free_port()
    url = f"ws://127.0.0.1:{port}/"
    command = [
        sys.executable, "-m", "alerts.cli", "simulate", "--port", str(port),
        "--generate", "200", "--tick-interval", "0", "--seed", "1",
    ]  # fmt: skip
    server = subprocess.Popen(command, env={**os.environ, "ALERTS_LOG_LEVEL": "WARNING"})
    results = []
    try:
        await wait_for_server(url)
        symbols = generated_symbols(200)
        prices = await current_prices(url, symbols)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "engine.db"
            upgrade(f"sqlite:///{path}")
            db = Database(f"sqlite:///{path}")
            filled = 0
            for stage in STAGES:
                began = time.perf_counter()
                fill(path, filled, stage, prices, seed=stage)
                filled = stage
                print(f"filled {stage:,} rules in {time.perf_counter() - began:.1f} s", flush=True)
                floor_sample = await parsed(url, symbols, 1.0, args.seconds)
                sample, load, grown, armed = await run_engine(db, url, 1.0, args.seconds)
                results.append((stage, floor_sample, sample, load, grown, armed))
            db.dispose()
    finally:
        server.terminate()
        server.wait(10)

    print(f"200 symbols; floor and engine alternate, {args.seconds:g} s each\n")
    print(
        f"{'rules':>10} {'floor/s':>9} {'engine/s':>9} {'ratio':>6} {'floor us':>9}"
        f" {'engine us':>10} {'load s':>7} {'B/rule':>7} {'fired':>6}"
    )
    for stage, f, e, load, grown, armed in results:
        print(
            f"{stage:>10,} {f.rate:>9,.0f} {e.rate:>9,.0f} {e.rate / f.rate:>6.2f}"
            f" {f.cpu_us:>9.1f} {e.cpu_us:>10.1f} {load:>7.1f} {grown / stage:>7.0f}"
            f" {stage - armed:>6}"
        )
    first, last = results[0], results[-1]
    vs_floor = last[2].rate / last[1].rate
    vs_small = last[2].rate / first[2].rate
    per_rule = last[4] / last[0]
    print(f"\n1M rules vs floor:        {vs_floor:.2f}  (goal >= 0.70)")
    print(f"1M rules vs 1k rules:     {vs_small:.2f}  (goal >= 0.90)")
    print(f"memory per rule at 1M:    {per_rule:.0f} B  (goal <= 600)")
    print(f"load 1M rules:            {last[3]:.1f} s  (goal <= 15)")


if __name__ == "__main__":
    asyncio.run(main())
