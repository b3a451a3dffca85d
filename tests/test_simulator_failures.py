"""The simulator's own bugs stay with one request or one connection: over real sockets, a
handler or a writer that fails once leaves every other client served."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from alerts.simulator import Simulator
from tests.feed_helpers import eventually
from tests.test_simulator import Client, config

INTERNAL_ERROR = -32603


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config()) as simulator:
        yield simulator


def fail_once(original: Callable[..., Any]) -> Callable[..., Any]:
    """`original`, except that its first call raises a RuntimeError."""
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("simulated bug")
        return original(*args, **kwargs)

    return wrapper


def errors(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """Error records of the simulator, with a traceback, whose message contains `text`."""
    return [
        r
        for r in caplog.records
        if r.name == "alerts.simulator"
        and r.levelno == logging.ERROR
        and r.exc_info is not None
        and text in r.getMessage()
    ]


async def test_a_failing_handler_costs_one_request(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect(sim.url) as ws_a, connect(sim.url) as ws_b:
        alice, bob = Client(ws_a), Client(ws_b)
        await alice.ok("ping")
        await bob.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
        await bob.push("ticker")
        (alice_id,) = {c.id for c in sim._hub.connections if not c.subs}
        monkeypatch.setattr(sim._dispatcher, "_auth", fail_once(sim._dispatcher._auth))

        response = await alice.request("auth", {"token": "good"})

        assert response["id"] == "2" and response["error"]["code"] == INTERNAL_ERROR
        (record,) = errors(caplog, "internal error handling auth")
        assert "request id '2'" in record.getMessage()
        assert f"on connection {alice_id}" in record.getMessage()
        # The same connection goes on, its retry succeeds ...
        await alice.ok("auth", {"token": "good"})
        await alice.ok("subscribe", {"channel": "balances"})
        # ... and the other client never noticed.
        sim.set_price("BTC-USDT", Decimal("12345"))
        assert Decimal((await bob.push("ticker"))["data"]["lastPrice"]) == Decimal("12345")
        assert sim.open_connections == 2


async def test_a_failing_writer_drops_only_its_connection(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect(sim.url) as ws_a, connect(sim.url) as ws_b:
        alice, bob = Client(ws_a), Client(ws_b)
        await alice.ok("auth", {"token": "good"})
        await bob.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
        await bob.push("ticker")
        (alice_id,) = {c.id for c in sim._hub.connections if c.user == 7}
        # The writer asks for the stall left before every frame it sends.
        monkeypatch.setattr(sim._faults, "stall_remaining", fail_once(sim._faults.stall_remaining))

        await ws_a.send('{"id": "p", "method": "ping"}')

        with pytest.raises(ConnectionClosed):
            await alice.frame()
        await eventually(lambda: sim.open_connections == 1, message="the connection's removal")
        (record,) = errors(caplog, f"writer of connection {alice_id} (user 7) failed")
        assert "1 frames unsent" in record.getMessage()
        assert sim.subscriptions() == [frozenset({("ticker", "BTC-USDT", "1day")})]
        # The other client is still served, and the dropped one can come back.
        sim.set_price("BTC-USDT", Decimal("12345"))
        assert Decimal((await bob.push("ticker"))["data"]["lastPrice"]) == Decimal("12345")
        await bob.ok("ping")
    async with connect(sim.url) as ws:
        await Client(ws).ok("auth", {"token": "good"})
