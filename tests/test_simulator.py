"""The exchange simulator, exercised over real sockets with a raw WebSocket client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import socket
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from alerts.simulator import Simulator, SimulatorConfig, serve_forever
from alerts.simulator.config import INTERVAL_MS
from alerts.simulator.market import Market
from alerts.simulator.protocol import RequestError, parse_request, parse_subscription

D = Decimal
FAST = 0.02
SYMBOLS = ("BTC-USDT", "ETH-USDT", "TON-USDT", "NOT-USDT", "DOGS-USDT", "HALT-USDT")
TICKER_FIELDS = {
    "symbol",
    "lastPrice",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "priceChange",
    "priceChangePercent",
    "bidPrice",
    "askPrice",
    "timestamp",
}
ORDER_FIELDS = {
    "orderId",
    "clientOrderId",
    "symbol",
    "side",
    "type",
    "status",
    "price",
    "quantity",
    "executedQuantity",
    "averagePrice",
    "createdAt",
    "updatedAt",
}


PARAMS = {
    "channel": st.sampled_from(["ticker", "tickers", "orderbook", "trades", "candles", "x"]),
    "symbol": st.sampled_from(["BTC-USDT", "btc", "NO-PE", "", 3]),
    "interval": st.sampled_from(["1min", "1week", "1month", "2min", None, 1]),
    "depth": st.sampled_from([0, 1, 5, 101, "5", True, None]),
}


def config(**overrides: Any) -> SimulatorConfig:
    """A fast, deterministic configuration; the market moves only on sim.tick() by default."""
    values: dict[str, Any] = {
        "symbols": SYMBOLS,
        "tick_interval": 3600.0,
        "seed": 1,
        "tokens": {"good": 7, "other": 8},
        "blocked_tokens": frozenset({"blocked"}),
        "suspended_symbols": frozenset({"HALT-USDT"}),
    }
    values.update(overrides)
    return SimulatorConfig(**values)


class Client:
    """A raw protocol client: numbered requests, pushes kept aside while waiting for answers."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pushes: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        message: dict[str, Any] = {"id": str(next(self._ids)), "method": method}
        if params is not None:
            message["params"] = params
        return await self.raw(json.dumps(message), message["id"])

    async def raw(self, frame: str | bytes, request_id: Any = None) -> dict[str, Any]:
        await self.ws.send(frame)
        while True:
            message = await self.frame()
            if "method" in message:
                self.pushes.append(message)
            elif message.get("id") == request_id:
                return message

    async def frame(self, timeout: float = 2.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            result: dict[str, Any] = json.loads(await self.ws.recv())
        return result

    async def push(self, channel: str | None = None, timeout: float = 2.0) -> dict[str, Any]:
        """The next push (of `channel`), earliest first; returns its params."""
        deadline = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self.pushes):
                if channel is None or message["params"]["channel"] == channel:
                    del self.pushes[i]
                    params: dict[str, Any] = message["params"]
                    return params
            self.pushes.append(await self.frame(deadline - time.monotonic()))

    async def ok(self, method: str, params: Any = None) -> None:
        response = await self.request(method, params)
        assert response.get("result") == {"success": True}, response

    async def error(self, method: str, params: Any = None) -> int:
        response = await self.request(method, params)
        assert "error" in response, response
        code: int = response["error"]["code"]
        return code

    async def quiet(self, seconds: float = 0.15) -> list[str]:
        """Frames received within `seconds` (raw text)."""
        frames: list[str] = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    frames.append(str(await self.ws.recv()))
        except TimeoutError:
            return frames


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(config()) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[Client]:
    async with connect(sim.url) as ws:
        yield Client(ws)


async def read_until_closed(client: Client) -> None:
    """Read frames until the connection fails (or the 2 s frame timeout hits)."""
    while True:
        await client.frame()


def is_valid_push(frame: str) -> bool:
    """True when a frame is a well-formed subscription push."""
    try:
        message = json.loads(frame)
    except ValueError:
        return False
    if not isinstance(message, dict) or message.get("method") != "subscription":
        return False
    params = message.get("params")
    return (
        isinstance(params, dict)
        and isinstance(params.get("channel"), str)
        and isinstance(params.get("data"), dict | list)
    )


def assert_decimal_strings(data: dict[str, Any], fields: set[str]) -> None:
    for name in fields:
        assert isinstance(data[name], str), name
        assert "E" not in data[name], data[name]
        Decimal(data[name])


# -- requests and errors ------------------------------------------------------------------------


async def test_ping_answers_success_and_is_counted(sim: Simulator, client: Client) -> None:
    response = await client.raw('{"id": 12345, "method": "ping"}', 12345)
    assert response == {"id": 12345, "result": {"success": True}}
    assert sim.pings_received == 1
    assert sim.requests == [("ping", {})]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", -32700),
        ("[1, 2]", -32600),
        ('{"id": "1"}', -32600),
        ('{"id": "1", "method": 5}', -32600),
        ('{"id": {"a": 1}, "method": "ping"}', -32600),
        ('{"id": true, "method": "ping"}', -32600),
    ],
)
async def test_malformed_requests_get_envelope_errors(
    client: Client, frame: str, code: int
) -> None:
    await client.ws.send(frame)
    response = await client.frame()
    assert response["error"]["code"] == code
    assert isinstance(response["error"]["message"], str)
    if code == -32700:
        assert response["id"] is None


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ([1, 2], -32602),
        ({}, -32602),
        ({"channel": "nope"}, -32602),
        ({"channel": "ticker"}, -32602),
        ({"channel": "ticker", "symbol": 5}, -32602),
        ({"channel": "ticker", "symbol": "btc-usdt"}, -32006),
        ({"channel": "ticker", "symbol": "BTCUSDT"}, -32006),
        ({"channel": "trades", "symbol": "FOO-USDT"}, -32005),
        ({"channel": "ticker", "symbol": "HALT-USDT"}, -32009),
        ({"channel": "ticker", "symbol": "BTC-USDT", "interval": "2min"}, -32602),
        ({"channel": "ticker", "symbol": "BTC-USDT", "interval": "1month"}, -32008),
        ({"channel": "tickers", "interval": 5}, -32602),
        ({"channel": "candles", "symbol": "BTC-USDT"}, -32602),
        ({"channel": "candles", "symbol": "BTC-USDT", "interval": "1month"}, -32008),
        ({"channel": "orderbook", "symbol": "BTC-USDT", "depth": "5"}, -32602),
        ({"channel": "orderbook", "symbol": "BTC-USDT", "depth": 0}, -32602),
        ({"channel": "orderbook", "symbol": "BTC-USDT", "depth": 1000}, -32602),
        ({"channel": "balances"}, -32033),
        ({"channel": "activeOrders"}, -32033),
        ({"channel": "activeOrders", "symbol": "BTC-USDT"}, -32033),
    ],
)
async def test_bad_subscriptions_get_their_error_code(
    client: Client, params: Any, code: int
) -> None:
    response = await client.request("subscribe", params)
    assert response["id"] == "1"
    assert response["error"]["code"] == code


async def test_unknown_method_and_bad_auth_params(client: Client) -> None:
    assert await client.error("fly") == -32601
    assert await client.error("auth", {}) == -32602
    assert await client.error("auth", {"token": 42}) == -32602


async def test_subscribing_twice_and_unsubscribing_unknown(client: Client) -> None:
    params = {"channel": "ticker", "symbol": "BTC-USDT"}
    await client.ok("subscribe", params)
    assert await client.error("subscribe", {**params, "interval": "1day"}) == -32002
    assert await client.error("unsubscribe", {"channel": "trades", "symbol": "BTC-USDT"}) == -32003
    await client.ok("unsubscribe", params)
    assert await client.error("unsubscribe", params) == -32003


async def test_auth_valid_invalid_and_blocked(sim: Simulator, client: Client) -> None:
    assert await client.error("auth", {"token": "nope"}) == -32030
    blocked = await client.request("auth", {"token": "blocked"})
    assert blocked["error"] == {
        "code": -32034,
        "message": "User Blocked",
        "data": {"detail": "Invalid authentication"},
    }
    assert await client.error("subscribe", {"channel": "balances"}) == -32033
    await client.ok("auth", {"token": "good"})
    await client.ok("subscribe", {"channel": "balances"})
    assert sim.subscriptions() == [frozenset({("balances",)})]


async def test_handler_failure_answers_internal_error(
    sim: Simulator, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(sim._dispatcher, "_auth", boom)
    assert await client.error("auth", {"token": "good"}) == -32603
    await client.ok("ping")


async def test_garbage_never_breaks_the_server(sim: Simulator, client: Client) -> None:
    garbage: list[str | bytes] = [
        b"\xff\xfe\x00",
        "null",
        '"text"',
        "1e999999",
        '{"id": 1, "method": "subscribe", "params": null}',
        '{"id": 1, "method": "subscribe", "params": {"channel": ["ticker"]}}',
        '{"id": 1, "method": "unsubscribe", "params": {"channel": "balances"}}',
        '{"id": 1.5, "method": "unsubscribeAll", "params": 7}',
        "[" * 50_000,
    ]
    for frame in garbage:
        await client.ws.send(frame)
        response = await client.frame()
        assert "error" in response or "result" in response
    await client.ok("ping")
    assert sim.open_connections == 1


async def test_oversized_frame_closes_the_connection(client: Client) -> None:
    big = json.dumps({"id": "1", "method": "ping", "params": {"x": "a" * 70_000}})
    with pytest.raises(ConnectionClosed) as closed:
        await client.raw(big, "1")
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


async def test_requests_and_subscriptions_are_observable(sim: Simulator, client: Client) -> None:
    await client.ok("auth", {"token": "good"})
    await client.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
    await client.ok("subscribe", {"channel": "activeOrders"})
    await client.ok("subscribe", {"channel": "activeOrders", "symbol": "ETH-USDT"})
    assert [method for method, _ in sim.requests] == ["auth", "subscribe", "subscribe", "subscribe"]
    assert sim.requests[1][1] == {"channel": "ticker", "symbol": "BTC-USDT"}
    assert sim.subscriptions() == [
        frozenset(
            {
                ("ticker", "BTC-USDT", "1day"),
                ("activeOrders",),
                ("activeOrders", "ETH-USDT"),
            }
        )
    ]
    await client.ok("unsubscribeAll")
    assert sim.subscriptions() == [frozenset()]


# -- public channels ----------------------------------------------------------------------------


async def test_ticker_push_shape_and_set_price(sim: Simulator, client: Client) -> None:
    await client.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
    snapshot = await client.push("ticker")
    assert snapshot["symbol"] == "BTC-USDT"
    assert snapshot["interval"] == "1day"
    sim.set_price("BTC-USDT", D("71234.5"))
    params = await client.push("ticker")
    data = params["data"]
    assert set(data) >= TICKER_FIELDS
    assert_decimal_strings(data, TICKER_FIELDS - {"symbol", "timestamp"})
    assert isinstance(data["timestamp"], int)
    assert data["lastPrice"] == "71234.5"
    assert D(data["bidPrice"]) < D(data["lastPrice"]) < D(data["askPrice"])
    assert sim.price("BTC-USDT") == D("71234.5")


async def test_tickers_push_lists_every_symbol(sim: Simulator, client: Client) -> None:
    await client.ok("subscribe", {"channel": "tickers", "interval": "1day"})
    await client.push("tickers")
    sim.tick()
    params = await client.push("tickers")
    assert params["interval"] == "1day"
    assert "symbol" not in params
    assert [t["symbol"] for t in params["data"]] == list(SYMBOLS)
    for ticker in params["data"]:
        assert set(ticker) >= TICKER_FIELDS


async def test_orderbook_push_is_a_sorted_snapshot(sim: Simulator, client: Client) -> None:
    await client.ok("subscribe", {"channel": "orderbook", "symbol": "ETH-USDT", "depth": 5})
    await client.push("orderbook")
    sim.tick()
    data = (await client.push("orderbook"))["data"]
    assert data["symbol"] == "ETH-USDT"
    assert len(data["bids"]) == len(data["asks"]) == 5
    bids = [D(p) for p, _ in data["bids"]]
    asks = [D(p) for p, _ in data["asks"]]
    assert bids == sorted(bids, reverse=True)
    assert asks == sorted(asks)
    assert bids[0] < sim.price("ETH-USDT") < asks[0]
    assert all(isinstance(v, str) for level in data["bids"] + data["asks"] for v in level)
    sim.push_orderbook("ETH-USDT", [(D("10"), D("1")), (D("9"), D("2"))], [(D("11"), D("3"))])
    given = (await client.push("orderbook"))["data"]
    assert given["bids"] == [["10", "1"], ["9", "2"]]
    assert given["asks"] == [["11", "3"]]


async def test_orderbook_default_depth_and_unsubscribe_without_depth(
    sim: Simulator, client: Client
) -> None:
    await client.ok("subscribe", {"channel": "orderbook", "symbol": "BTC-USDT"})
    data = (await client.push("orderbook"))["data"]
    assert len(data["asks"]) == sim.config.orderbook_depth
    await client.ok("unsubscribe", {"channel": "orderbook", "symbol": "BTC-USDT"})
    await client.ok("subscribe", {"channel": "orderbook", "symbol": "BTC-USDT", "depth": 3})
    await client.ok("unsubscribe", {"channel": "orderbook", "symbol": "BTC-USDT"})
    assert sim.subscriptions() == [frozenset()]


async def test_trades_push_shape(sim: Simulator, client: Client) -> None:
    await client.ok("subscribe", {"channel": "trades", "symbol": "TON-USDT"})
    sim.tick()
    trades = (await client.push("trades"))["data"]
    assert isinstance(trades, list)
    assert trades
    for trade in trades:
        assert set(trade) >= {"id", "symbol", "price", "quantity", "side", "timestamp"}
        assert trade["side"] in ("BUY", "SELL")
        assert_decimal_strings(trade, {"price", "quantity"})
    sim.push_trade("TON-USDT", D("6.25"), D("3"), side="SELL")
    [trade] = (await client.push("trades"))["data"]
    assert (trade["price"], trade["quantity"], trade["side"]) == ("6.25", "3", "SELL")


async def test_candles_update_then_close(sim: Simulator, client: Client) -> None:
    await client.ok("subscribe", {"channel": "candles", "symbol": "BTC-USDT", "interval": "5min"})
    first = await client.push("candles")
    assert (first["symbol"], first["interval"]) == ("BTC-USDT", "5min")
    sim.set_price("BTC-USDT", D("80000"))
    sim.set_price("BTC-USDT", D("60000"))
    sim.set_price("BTC-USDT", D("65000"))
    while (candle := (await client.push("candles"))["data"])["close"] != "65000":
        assert candle["closed"] is False
    assert (candle["high"], candle["low"]) == ("80000", "60000")
    assert candle["closeTime"] - candle["openTime"] == INTERVAL_MS["5min"] - 1
    sim.close_candle("BTC-USDT", "5min")
    closed = (await client.push("candles"))["data"]
    assert closed["closed"] is True
    assert closed["openTime"] == candle["openTime"]
    assert_decimal_strings(closed, {"open", "high", "low", "close", "volume"})
    sim.tick()
    following = (await client.push("candles"))["data"]
    assert following["closed"] is False
    assert following["openTime"] == closed["closeTime"] + 1


def test_candles_close_when_the_wall_clock_passes_their_end() -> None:
    market = Market(config())
    st = market.state("BTC-USDT")
    candle = market.ensure_candle(st, "1min", 120_000)
    assert market.apply(st, D("1"), D("0"), 179_999) == []
    [closed] = market.apply(st, D("2"), D("1"), 180_000)
    assert closed is candle
    assert closed.close == D("1")
    assert st.candles["1min"].open_time == 180_000
    assert st.candles["1min"].close == D("2")


async def test_ticks_push_on_their_own() -> None:
    async with Simulator(config(tick_interval=FAST)) as sim, connect(sim.url) as ws:
        fast = Client(ws)
        await fast.ok("subscribe", {"channel": "ticker", "symbol": "NOT-USDT"})
        stamps = [(await fast.push("ticker"))["data"]["timestamp"] for _ in range(4)]
        assert stamps == sorted(stamps)


async def test_unsubscribe_and_unsubscribe_all_stop_pushes(sim: Simulator, client: Client) -> None:
    await client.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
    await client.ok("subscribe", {"channel": "trades", "symbol": "BTC-USDT"})
    await client.ok("unsubscribe", {"channel": "ticker", "symbol": "BTC-USDT", "interval": "1day"})
    client.pushes.clear()
    sim.tick()
    frames = [json.loads(f) for f in await client.quiet()]
    assert {f["params"]["channel"] for f in frames} == {"trades"}
    await client.ok("unsubscribeAll")
    client.pushes.clear()
    sim.tick()
    sim.push_trade("BTC-USDT", D("1"), D("1"))
    assert await client.quiet() == []


# -- private channels ---------------------------------------------------------------------------


async def test_balances_first_push_is_full_then_deltas(sim: Simulator, client: Client) -> None:
    sim.set_balance(7, "ETH", D("2"), D("0.5"))
    await client.ok("auth", {"token": "good"})
    await client.ok("subscribe", {"channel": "balances"})
    first = await client.push("balances")
    assert first == {
        "channel": "balances",
        "data": [
            {"currency": "BTC", "available": "0.25", "locked": "0"},
            {"currency": "ETH", "available": "2", "locked": "0.5"},
            {"currency": "TON", "available": "500", "locked": "0"},
            {"currency": "USDT", "available": "10000", "locked": "0"},
        ],
    }
    sim.set_balance(7, "TON", D("12.5"))
    sim.set_balance(8, "TON", D("99"))  # another user's change is not pushed here
    delta = await client.push("balances")
    assert delta["data"] == [{"currency": "TON", "available": "12.5", "locked": "0"}]
    assert await client.quiet(0.1) == []


async def test_order_life_cycle_reaches_subscribers(sim: Simulator, client: Client) -> None:
    await client.ok("auth", {"token": "good"})
    await client.ok("subscribe", {"channel": "activeOrders"})
    await client.ok("subscribe", {"channel": "balances"})
    await client.push("balances")
    order_id = sim.place_order(7, "BTC-USDT", "BUY", D("60000"), D("0.1"))
    new = (await client.push("activeOrders"))["data"]
    assert [o["status"] for o in new] == ["NEW"]
    assert set(new[0]) >= ORDER_FIELDS
    assert new[0]["orderId"] == order_id
    assert_decimal_strings(new[0], {"price", "quantity", "executedQuantity", "averagePrice"})
    locked = (await client.push("balances"))["data"]
    assert locked == [{"currency": "USDT", "available": "4000.00", "locked": "6000.00"}]

    sim.fill_order(order_id, D("0.04"))
    [partial] = (await client.push("activeOrders"))["data"]
    assert partial["status"] == "PARTIALLY_FILLED"
    assert (partial["executedQuantity"], partial["averagePrice"]) == ("0.04", "60000")
    moved = {b["currency"]: b for b in (await client.push("balances"))["data"]}
    assert moved["BTC"]["available"] == "0.29"
    assert D(moved["USDT"]["locked"]) == D("3600")

    sim.fill_order(order_id)
    [filled] = (await client.push("activeOrders"))["data"]
    assert (filled["status"], filled["executedQuantity"]) == ("FILLED", "0.10")
    final = {b["currency"]: b for b in (await client.push("balances"))["data"]}
    assert D(final["USDT"]["locked"]) == 0
    assert D(final["USDT"]["available"]) == D("4000")
    assert D(final["BTC"]["available"]) == D("0.35")

    with pytest.raises(ValueError, match="no longer active"):
        sim.fill_order(order_id)
    second = sim.place_order(7, "TON-USDT", "SELL", D("7"), D("100"))
    assert (await client.push("activeOrders"))["data"][0]["status"] == "NEW"
    sim.cancel_order(second)
    [canceled] = (await client.push("activeOrders"))["data"]
    assert (canceled["orderId"], canceled["status"]) == (second, "CANCELED")


async def test_active_orders_filtered_by_symbol_with_snapshot(
    sim: Simulator, client: Client
) -> None:
    sim.place_order(7, "ETH-USDT", "BUY", D("3000"), D("1"))
    await client.ok("auth", {"token": "good"})
    await client.ok("subscribe", {"channel": "activeOrders", "symbol": "BTC-USDT"})
    sim.place_order(7, "ETH-USDT", "BUY", D("3000"), D("1"))
    btc = sim.place_order(7, "BTC-USDT", "SELL", D("90000"), D("0.01"), type="MARKET")
    params = await client.push("activeOrders")
    assert params["symbol"] == "BTC-USDT"
    assert [(o["orderId"], o["type"]) for o in params["data"]] == [(btc, "MARKET")]
    await client.ok("subscribe", {"channel": "activeOrders", "symbol": "ETH-USDT"})
    snapshot = await client.push("activeOrders")
    assert [o["symbol"] for o in snapshot["data"]] == ["ETH-USDT", "ETH-USDT"]


async def test_order_activity_runs_life_cycles() -> None:
    async with Simulator(config(order_activity_interval=0.005)) as sim, connect(sim.url) as ws:
        orders = Client(ws)
        await orders.ok("auth", {"token": "good"})
        await orders.ok("subscribe", {"channel": "activeOrders"})
        statuses: dict[str, list[str]] = {}
        finished = 0
        while finished < 3:
            [order] = (await orders.push("activeOrders"))["data"]
            statuses.setdefault(order["orderId"], []).append(order["status"])
            finished += order["status"] in ("FILLED", "CANCELED")
        paths = (["NEW", "PARTIALLY_FILLED", "FILLED"], ["NEW", "CANCELED"], ["NEW", "FILLED"])
        for history in statuses.values():
            assert any(path[: len(history)] == history for path in paths), history
        await orders.ok("subscribe", {"channel": "balances"})
        for balance in (await orders.push("balances"))["data"]:
            assert D(balance["locked"]) >= 0
        assert sim.open_connections == 1


# -- market paths -------------------------------------------------------------------------------


async def test_scripted_prices_appear_in_order() -> None:
    scripted = [D("100"), D("101.5"), D("99")]
    async with Simulator(config(tick_interval=FAST)) as sim, connect(sim.url) as ws:
        client = Client(ws)
        await client.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
        sim.script("BTC-USDT", [*scripted, D("98")])
        seen: list[Decimal] = []
        while D("98") not in seen:
            seen.append(D((await client.push("ticker"))["data"]["lastPrice"]))
        start = seen.index(D("100"))
        assert seen[start:] == [*scripted, D("98")]
        assert (await client.push("ticker"))["data"]["lastPrice"] != "98"


def test_configured_script_is_consumed_one_price_per_tick() -> None:
    scripted = Simulator(config(scripts={"TON-USDT": [D("5"), D("6")]}))
    scripted.tick()
    assert scripted.price("TON-USDT") == D("5")
    scripted.tick()
    assert scripted.price("TON-USDT") == D("6")
    scripted.tick()
    assert scripted.price("TON-USDT") != D("6")


async def ticker_path(seed: int, ticks: int) -> list[str]:
    async with Simulator(config(seed=seed)) as sim, connect(sim.url) as ws:
        client = Client(ws)
        await client.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
        await client.ok("subscribe", {"channel": "trades", "symbol": "BTC-USDT"})
        await client.push("ticker")
        path = []
        for _ in range(ticks):
            sim.tick()
            path.append((await client.push("ticker"))["data"]["lastPrice"])
        return path


async def test_seed_makes_the_path_deterministic() -> None:
    first = await ticker_path(42, 10)
    assert first == await ticker_path(42, 10)
    assert first != await ticker_path(43, 10)
    assert len(set(first)) > 1


def test_generated_symbols_get_seeded_prices_and_ticks() -> None:
    symbols = ("AAA-USDT", "BBB-USDT")
    a = Market(config(symbols=symbols, seed=5))
    b = Market(config(symbols=symbols, seed=5))
    for symbol in symbols:
        assert a.state(symbol).price == b.state(symbol).price > 0
    for _ in range(100):
        for state in a.states.values():
            a.advance(state, 0)
            assert state.price > 0
            assert state.price % state.tick == 0


# -- faults -------------------------------------------------------------------------------------


async def test_drop_connections_closes_clients(sim: Simulator, client: Client) -> None:
    await client.ok("ping")
    assert await sim.drop_connections() == 1
    with pytest.raises(ConnectionClosed):
        await client.frame()
    assert sim.open_connections == 0
    assert await sim.drop_connections() == 0


async def test_a_client_too_far_behind_is_dropped(
    sim: Simulator, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
    monkeypatch.setattr("alerts.simulator.hub.MAX_BACKLOG", 5)
    for i in range(10):  # no await: the writer gets no chance to catch up
        sim.set_price("BTC-USDT", D(1000 + i))
    assert sim.open_connections == 0
    with pytest.raises(ConnectionClosed):
        await read_until_closed(client)


async def test_stall_delays_answers(sim: Simulator, client: Client) -> None:
    await client.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
    await client.push("ticker")
    sim.stall(0.3)
    started = time.monotonic()
    await client.ws.send('{"id": "p", "method": "ping"}')
    sim.set_price("BTC-USDT", D("1"))
    response = await client.frame()
    assert time.monotonic() - started >= 0.25
    assert response == {"id": "p", "result": {"success": True}}
    assert sim.pings_received == 1
    assert sim.open_connections == 1


async def test_rate_limit_next(client: Client, sim: Simulator) -> None:
    sim.rate_limit_next(2)
    params = {"channel": "trades", "symbol": "BTC-USDT"}
    assert await client.error("subscribe", params) == -32050
    await client.ok("ping")
    assert await client.error("auth", {"token": "good"}) == -32050
    await client.ok("subscribe", params)


async def test_close_on_accept(sim: Simulator) -> None:
    sim.close_on_accept = True
    async with connect(sim.url) as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert sim.connection_attempts == 1
    assert sim.open_connections == 0
    sim.close_on_accept = False
    async with connect(sim.url) as ws:
        await Client(ws).ok("ping")
    assert sim.connection_attempts == 2


async def test_idle_connection_is_closed_but_pings_keep_it_open() -> None:
    async with Simulator(config(idle_timeout=0.3)) as sim:
        async with connect(sim.url) as ws:
            client = Client(ws)
            for _ in range(5):
                await asyncio.sleep(0.1)
                await client.ok("ping")
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                await client.frame(timeout=2)
            assert 0.2 <= time.monotonic() - started < 1.5
        assert sim.open_connections == 0


async def test_inject_malformed_replaces_the_next_pushes(sim: Simulator, client: Client) -> None:
    await client.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
    await client.push("ticker")
    sim.inject_malformed(5)
    for i in range(6):
        sim.set_price("BTC-USDT", D(100 + i))
    frames = [str(await client.ws.recv()) for _ in range(6)]
    assert not any(is_valid_push(f) for f in frames[:5])
    assert is_valid_push(frames[5])
    assert json.loads(frames[5])["params"]["data"]["lastPrice"] == "105"
    await client.ok("ping")


async def test_malformed_rate_one_spoils_every_push() -> None:
    async with Simulator(config(malformed_rate=1.0)) as sim, connect(sim.url) as ws:
        client = Client(ws)
        await client.ws.send(json.dumps({"id": "1", "method": "subscribe", "params": {
            "channel": "ticker", "symbol": "BTC-USDT"}}))  # fmt: skip
        assert json.loads(await ws.recv()) == {"id": "1", "result": {"success": True}}
        for _ in range(5):
            sim.tick()
        frames = [str(await ws.recv()) for _ in range(6)]
        assert not any(is_valid_push(f) for f in frames)


async def test_serve_forever_runs_until_cancelled() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(serve_forever(config(), "127.0.0.1", port))
    try:
        for _ in range(100):
            try:
                async with connect(f"ws://127.0.0.1:{port}/") as ws:
                    await Client(ws).ok("ping")
                    break
            except OSError:
                await asyncio.sleep(0.01)
        else:
            pytest.fail("serve_forever never listened")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    with pytest.raises(ConnectionRefusedError):
        async with connect(f"ws://127.0.0.1:{port}/", open_timeout=1):
            pass


# -- request parsing never fails except with a protocol error ---------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(
    frame=st.one_of(
        st.text(max_size=40),
        st.binary(max_size=40),
        json_values.map(json.dumps),
        st.fixed_dictionaries(
            {"id": json_values, "method": st.sampled_from(["subscribe", "unsubscribe"])},
            optional={"params": json_values | st.fixed_dictionaries({}, optional=PARAMS)},
        ).map(json.dumps),
    )
)
def test_any_frame_parses_or_raises_a_protocol_error(frame: str | bytes) -> None:
    with contextlib.suppress(RequestError):
        request = parse_request(frame)
        if isinstance(request.params, dict):
            parse_subscription(request.params, symbols=SYMBOLS, default_depth=20)


async def test_unsubscribe_naming_only_the_channel_drops_all_of_it(
    sim: Simulator, client: Client
) -> None:
    """The published example names only the channel: every subscription of it goes."""
    for symbol in ("BTC-USDT", "ETH-USDT"):
        await client.ok("subscribe", {"channel": "trades", "symbol": symbol})
    await client.ok("subscribe", {"channel": "ticker", "symbol": "BTC-USDT"})
    await client.ok("unsubscribe", {"channel": "trades"})
    client.pushes.clear()
    sim.push_trade("ETH-USDT", D("1"), D("1"))
    sim.tick()
    frames = [json.loads(f) for f in await client.quiet()]
    assert {f["params"]["channel"] for f in frames} == {"ticker"}
    assert await client.error("unsubscribe", {"channel": "trades"}) == -32602


async def test_balances_move_in_whole_cents_of_the_quote_currency(sim: Simulator) -> None:
    """A background order's fill at a six-decimal price: the quote balance stays in cents."""
    user, rng = 7, random.Random(5)
    prices = {"DOGS-USDT": D("0.00123457"), "BTC-USDT": D("70123.45")}
    for step in range(40):
        sim._accounts.random_step(user, rng, prices, step)
    usdt = sim._accounts.balances(user)["USDT"]
    assert usdt.available == usdt.available.quantize(D("0.01"))
    assert usdt.locked == usdt.locked.quantize(D("0.01"))


# -- the REST API -------------------------------------------------------------------------------


async def test_the_rest_api_serves_history_balances_candles_and_symbols(sim: Simulator) -> None:
    order = sim.place_order(7, "BTC-USDT", "BUY", D("60000"), D("0.1"))
    sim.fill_order(order)
    other = sim.place_order(8, "BTC-USDT", "SELL", D("1"), D("0.1"))
    sim.cancel_order(other)
    sim.close_candle("BTC-USDT", "1min")
    good = {"Authorization": "Bearer good"}
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        r = await http.get("/api/v1/orders/history", params={"startAt": 0}, headers=good)
        assert r.status_code == 200 and r.json()["success"] is True
        [filled] = r.json()["data"]  # user 7's own, closed ones only
        assert filled["orderId"] == order and filled["status"] == "FILLED"
        later = {"startAt": filled["updatedAt"] + 1}
        r = await http.get("/api/v1/orders/history", params=later, headers=good)
        assert r.json()["data"] == []
        r = await http.get("/api/v1/orders/history", headers=good)
        assert r.status_code == 400 and r.json()["error"]["code"] == -32602  # startAt required
        r = await http.get("/api/v1/orders/history", params={"startAt": 0})
        assert r.status_code == 401 and r.json()["success"] is False
        bad = {"Authorization": "Bearer nope"}
        r = await http.get("/api/v1/balances", headers=bad)
        assert r.status_code == 401 and r.json()["error"]["code"] == -32030
        r = await http.get("/api/v1/balances", headers=good)
        assert {b["currency"] for b in r.json()["data"]} >= {"USDT", "BTC"}
        r = await http.get("/api/v1/candles", params={"symbol": "BTC-USDT", "interval": "1min"})
        [candle] = r.json()["data"]
        assert candle["closed"] is True and candle["symbol"] == "BTC-USDT"
        r = await http.get("/api/v1/symbols")
        assert {"symbol": "BTC-USDT", "baseCurrency": "BTC", "quoteCurrency": "USDT",
                "status": "TRADING"} in r.json()["data"]  # fmt: skip
        assert (await http.get("/api/v1/nothing")).status_code == 404


async def test_the_rest_api_fails_on_purpose(sim: Simulator) -> None:
    sim.rest_faults.fail_next(503)
    sim.rest_faults.fail_next(429, retry_after=2)
    sim.rest_faults.malformed = 1
    async with httpx.AsyncClient(base_url=sim.api_url) as http:
        assert (await http.get("/api/v1/symbols")).status_code == 503
        busy = await http.get("/api/v1/symbols")
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "2"
        with pytest.raises(json.JSONDecodeError):
            (await http.get("/api/v1/symbols")).json()
        assert (await http.get("/api/v1/symbols")).status_code == 200
