"""Garbage from the exchange never raises out of the client and never stops it."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve

from alerts.domain.events import Ticker
from alerts.feed import FeedClient
from tests.feed_helpers import Collector, eventually, fast_config, running
from tests.test_protocol import frames, json_values

VALID_PUSH = json.dumps(
    {
        "method": "subscription",
        "params": {
            "channel": "ticker",
            "symbol": "BTC-USDT",
            "data": {"symbol": "BTC-USDT", "lastPrice": "70000.5", "timestamp": 1767225600000},
        },
    }
)


def mutate(rng: random.Random) -> str:
    """One broken frame: a valid push bent in one of many ways."""
    base = json.loads(VALID_PUSH)
    data = base["params"]["data"]
    choice = rng.randrange(12)
    if choice == 0:
        return VALID_PUSH[: rng.randrange(len(VALID_PUSH))]  # truncated JSON
    if choice == 1:
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 60)))
    if choice == 2:
        return "[" * rng.randrange(1, 5000)  # deep nesting
    if choice == 3:
        data["lastPrice"] = rng.choice([None, True, [], {}, "abc", "NaN", "-Infinity", "1" * 99])
    elif choice == 4:
        base["params"]["data"] = rng.choice([None, 1, "x", [1, 2], [[]]])
    elif choice == 5:
        base["params"] = rng.choice([None, [], "ticker", 5])
    elif choice == 6:
        base["method"] = rng.choice(["subscribe", "", None, 7, "announcement"])
    elif choice == 7:
        base = {"id": rng.choice([None, "999", 3, [1]]), "result": {"success": True}}
    elif choice == 8:
        base["params"]["channel"] = rng.choice([None, 3, "tickerz", "", "activeOrders"])
    elif choice == 9:
        del data["symbol"]
        base["params"].pop("symbol")
    elif choice == 10:
        data["timestamp"] = rng.choice([-1, 10**30, "later", 1.5e300])
    else:
        base = rng.choice([[base], 42, "just a string", None])
    return json.dumps(base)


async def test_five_thousand_broken_frames_over_a_socket_never_stop_the_client() -> None:
    rng = random.Random(1234)
    corpus = [mutate(rng) for _ in range(5000)]

    async def handler(ws: ServerConnection) -> None:
        for frame in corpus:
            await ws.send(frame)
        await ws.send(VALID_PUSH)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        sink = Collector()
        client = FeedClient(fast_config(f"ws://127.0.0.1:{port}/"), sink)
        async with running(client):
            await eventually(
                lambda: any(t.last == Decimal("70000.5") for t in sink.of(Ticker)),
                message="the valid push after the garbage",
            )
            assert client.state.connects == 1
        state = client.state
        skipped = state.unparseable + state.ignored_messages
        parsed = sum(s.pushes for s in state.channels.values()) - state.unparseable
        assert skipped > 2000  # most of the corpus was refused, and counted
        assert skipped + parsed + state.invalid_frames >= 5000


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=frames, extra=st.lists(json_values, max_size=3))
def test_generated_frames_through_the_clients_frame_handler(
    batch: list[Any], extra: list[Any]
) -> None:
    client = FeedClient(fast_config("ws://127.0.0.1:9/"), Collector())
    for params in batch:
        client._on_frame(json.dumps({"method": "subscription", "params": params}, default=str))
    for value in extra:
        client._on_frame(json.dumps(value, default=str))
    client._on_frame(VALID_PUSH)
    assert client.state.channels["ticker"].events >= 1


def test_a_failing_consumer_is_counted_not_fatal() -> None:
    def explode(_: object) -> None:
        raise RuntimeError("consumer bug")

    client = FeedClient(fast_config("ws://127.0.0.1:9/"), explode)
    for _ in range(3):
        client._on_frame(VALID_PUSH)
    assert client.state.sink_errors == 3
