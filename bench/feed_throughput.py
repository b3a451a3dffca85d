"""Feed throughput: pushes/s parsed into events, next to the raw floor.

The simulator runs in its own process (`alerts simulate`, ticks as fast as it
can, 200 symbols) and streams tickers over loopback. This process receives the
same stream twice over, alternating:

- floor: a bare `websockets` client that receives frames and does nothing else;
- parsed: the real `FeedClient`, each frame decoded and turned into a typed
  `Ticker` event with `Decimal` prices and handed to a counting sink.

It prints pushes/s and this process's CPU time per push for each, and the ratio
parsed/floor that the goal is judged by (goal: >= 0.70, i.e. parsing costs less
than 30% of the floor). Run: `.venv/bin/python bench/feed_throughput.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from websockets.asyncio.client import connect

from alerts.domain.events import FeedEvent
from alerts.feed import Backoff, FeedClient, FeedConfig, Subscription
from alerts.simulator import generated_symbols


@dataclass
class Sample:
    pushes: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.pushes / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / max(self.pushes, 1) * 1e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_server(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            async with connect(url, open_timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def floor(url: str, symbols: tuple[str, ...], warmup: float, seconds: float) -> Sample:
    """Receive the stream with no parsing at all."""
    async with connect(url, ping_interval=None, max_size=None) as ws:
        for i, symbol in enumerate(symbols):
            params = {"channel": "ticker", "symbol": symbol, "interval": "1day"}
            await ws.send(json.dumps({"id": str(i), "method": "subscribe", "params": params}))
        # The same receive loop as the client's (`async for`), minus everything after it.
        count = 0
        start = time.perf_counter() + warmup
        end = start + seconds
        cpu0 = t0 = 0.0
        async for _ in ws:
            count += 1
            if count & 255 == 0:
                now = time.perf_counter()
                if not t0 and now >= start:
                    count, cpu0, t0 = 0, time.process_time(), now
                elif t0 and now >= end:
                    break
        return Sample(count, time.perf_counter() - t0, time.process_time() - cpu0)


async def parsed(url: str, symbols: tuple[str, ...], warmup: float, seconds: float) -> Sample:
    """Receive the same stream through the feed client, parsed into typed events."""
    count = 0

    def sink(_: FeedEvent) -> None:
        nonlocal count
        count += 1

    config = FeedConfig(url=url, backoff=Backoff(initial=0.05, maximum=1.0))
    client = FeedClient(config, sink)
    for symbol in symbols:
        await client.subscribe(Subscription.ticker(symbol))
    task = asyncio.create_task(client.run())
    while not client.ready:
        await asyncio.sleep(0.01)
    await asyncio.sleep(warmup)
    start_count, cpu0, t0 = count, time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    sample = Sample(count - start_count, time.perf_counter() - t0, time.process_time() - cpu0)
    await client.stop()
    await task
    if client.state.unparseable:
        raise SystemExit(f"unexpected unparseable pushes: {client.state.unparseable}")
    return sample


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="alternating floor/parsed pairs")
    args = parser.parse_args()

    port = free_port()
    url = f"ws://127.0.0.1:{port}/"
    command = [
        sys.executable, "-m", "alerts.cli", "simulate", "--port", str(port),
        "--generate", str(args.symbols), "--tick-interval", "0", "--seed", "1",
    ]  # fmt: skip
    env = {**os.environ, "ALERTS_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(command, env=env)
    try:
        await wait_for_server(url)
        symbols = generated_symbols(args.symbols)
        floors: list[Sample] = []
        parses: list[Sample] = []
        for _ in range(args.rounds):
            floors.append(await floor(url, symbols, 1.0, args.seconds))
            parses.append(await parsed(url, symbols, 1.0, args.seconds))
    finally:
        server.terminate()
        server.wait(10)

    # Rounds alternate, so each pair saw the same machine: ratios are taken per pair.
    pairs = list(zip(floors, parses, strict=True))
    ratio = statistics.median(p.rate / f.rate for f, p in pairs)
    overhead = statistics.median(p.cpu_us / f.cpu_us - 1 for f, p in pairs)
    floor_rate = statistics.median(s.rate for s in floors)
    parsed_rate = statistics.median(s.rate for s in parses)
    floor_cpu = statistics.median(s.cpu_us for s in floors)
    parsed_cpu = statistics.median(s.cpu_us for s in parses)
    print(f"symbols: {args.symbols}, {args.rounds} rounds of {args.seconds:g}s each, medians")
    print(f"floor  (raw receive):    {floor_rate:10,.0f} pushes/s  {floor_cpu:6.1f} us CPU/push")
    print(f"parsed (typed events):   {parsed_rate:10,.0f} pushes/s  {parsed_cpu:6.1f} us CPU/push")
    print(f"ratio parsed/floor:      {ratio:10.2f}   (goal >= 0.70)")
    print(f"parsing CPU overhead:    {overhead:10.0%}   of the floor's CPU per push")
    print("result:", "PASS" if ratio >= 0.70 else "FAIL")


if __name__ == "__main__":
    asyncio.run(main())
