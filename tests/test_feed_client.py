"""The feed client against the simulator, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from decimal import Decimal

import pytest

from alerts.domain.events import (
    BalanceUpdate,
    Candle,
    FeedEvent,
    Order,
    OrderBook,
    OrderStatus,
    Ticker,
    Trade,
)
from alerts.feed import Backoff, FeedClient, InvalidToken, Subscription, UserBlocked
from alerts.feed.errors import SymbolNotFound, SymbolNotOpened
from alerts.simulator import Simulator, SimulatorConfig
from tests.feed_helpers import Collector, eventually, fast_config, running

TOKEN = "tok-valid"
USER = 42


def sim_config(**overrides: object) -> SimulatorConfig:
    values: dict[str, object] = {
        "tick_interval": 0.02,
        "seed": 7,
        "tokens": {TOKEN: USER},
        "blocked_tokens": frozenset({"tok-blocked"}),
        "suspended_symbols": frozenset({"DOGS-USDT"}),
    }
    values.update(overrides)
    return SimulatorConfig(**values)  # type: ignore[arg-type]


async def test_every_public_channel_gives_typed_events() -> None:
    async with Simulator(sim_config()) as sim:
        sink = Collector()
        client = FeedClient(fast_config(sim.url), sink)
        for sub in (
            Subscription.ticker("BTC-USDT"),
            Subscription.tickers(),
            Subscription.orderbook("ETH-USDT", depth=5),
            Subscription.trades("BTC-USDT"),
            Subscription.candles("BTC-USDT", "1min"),
        ):
            await client.subscribe(sub)
        async with running(client):
            await eventually(lambda: client.ready, message="connection ready")
            await eventually(lambda: len({t.symbol for t in sink.of(Ticker)}) == 5)
            await eventually(lambda: bool(sink.of(OrderBook)) and bool(sink.of(Trade)))
            sim.close_candle("BTC-USDT", "1min")
            await eventually(lambda: any(c.closed for c in sink.of(Candle)))
        book = sink.of(OrderBook)[-1]
        assert book.symbol == "ETH-USDT"
        assert 0 < len(book.bids) <= 5
        assert book.best_bid is not None
        assert book.best_ask is not None
        assert book.best_bid < book.best_ask
        ticker = next(t for t in sink.of(Ticker) if t.symbol == "BTC-USDT")
        assert isinstance(ticker.last, Decimal)
        assert ticker.bid is not None
        assert ticker.ask is not None
        assert ticker.bid <= ticker.ask
        trade = sink.of(Trade)[0]
        assert trade.symbol == "BTC-USDT"
        assert trade.quantity > 0
        closed = next(c for c in sink.of(Candle) if c.closed)
        assert closed.interval == "1min"
        assert closed.low <= closed.close <= closed.high
        assert client.state.channels["ticker"].events > 0
        assert client.state.unparseable == 0


async def test_set_price_reaches_the_client_exactly() -> None:
    async with Simulator(sim_config(tick_interval=60)) as sim:
        sink = Collector()
        client = FeedClient(fast_config(sim.url), sink)
        await client.subscribe(Subscription.ticker("TON-USDT"))
        async with running(client):
            await eventually(lambda: client.ready)
            sim.set_price("TON-USDT", Decimal("5.4321"))
            await eventually(lambda: any(t.last == Decimal("5.4321") for t in sink.of(Ticker)))


async def test_authenticated_account_events() -> None:
    async with Simulator(sim_config(tick_interval=60)) as sim:
        sink = Collector()
        client = FeedClient(fast_config(sim.url, token=TOKEN, account="acct-1"), sink)
        await client.subscribe(Subscription.balances())
        await client.subscribe(Subscription.active_orders())
        async with running(client):
            await eventually(lambda: client.ready and bool(sink.of(BalanceUpdate)))
            first = sink.of(BalanceUpdate)[0]
            assert first.full
            assert first.account == "acct-1"
            assert len(first.balances) >= 2

            order_id = sim.place_order(USER, "BTC-USDT", "BUY", Decimal("60000"), Decimal("0.1"))
            sim.fill_order(order_id, Decimal("0.04"))
            sim.fill_order(order_id)
            await eventually(lambda: any(o.status is OrderStatus.FILLED for o in sink.of(Order)))
            sim.set_balance(USER, "TON", Decimal("123.5"))
            await eventually(
                lambda: any(
                    b.currency == "TON" and b.available == Decimal("123.5")
                    for u in sink.of(BalanceUpdate)
                    for b in u.balances
                )
            )
        statuses = [o.status for o in sink.of(Order) if o.order_id == order_id]
        assert statuses == [OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED]
        filled = sink.of(Order)[-1]
        assert filled.executed_quantity == Decimal("0.1")
        assert filled.account == "acct-1"
        assert not any(u.full for u in sink.of(BalanceUpdate)[1:])


@pytest.mark.parametrize(("token", "error"), [("nope", InvalidToken), ("tok-blocked", UserBlocked)])
async def test_refused_credentials_stop_the_client(token: str, error: type[Exception]) -> None:
    async with Simulator(sim_config()) as sim:
        client = FeedClient(fast_config(sim.url, token=token), Collector())
        await client.subscribe(Subscription.balances())
        with pytest.raises(error):
            await asyncio.wait_for(client.run(), 5)
        await asyncio.sleep(0.2)  # long enough for several reconnects, were it to try
        assert sim.connection_attempts == 1
        assert isinstance(client.state.fatal_error, error)
        assert token not in str(client.state.fatal_error)


async def test_pings_flow_and_keep_an_idle_connection_open() -> None:
    async with Simulator(sim_config(tick_interval=60, idle_timeout=0.3)) as sim:
        client = FeedClient(fast_config(sim.url, ping_interval=0.05), Collector())
        async with running(client):
            await eventually(lambda: client.state.pongs_received >= 12, message="12 pongs")
        assert sim.pings_received >= 12
        assert client.state.connects == 1  # pings kept it alive past the idle timeout


async def test_an_unanswered_ping_means_a_dead_connection() -> None:
    async with Simulator(sim_config()) as sim:
        sink = Collector()
        client = FeedClient(fast_config(sim.url, ping_interval=0.05, ping_timeout=0.1), sink)
        await client.subscribe(Subscription.ticker("BTC-USDT"))
        async with running(client):
            await eventually(lambda: client.ready)
            sim.stall(0.4)
            await eventually(lambda: client.state.connects >= 2 and client.ready, timeout=5)
            assert "ping" in (client.state.last_error or "")
            before = len(sink.events)
            await eventually(lambda: len(sink.events) > before, message="pushes resume")


async def test_watchdog_drops_a_silent_connection() -> None:
    async with Simulator(sim_config(tick_interval=60)) as sim:
        client = FeedClient(fast_config(sim.url, ping_interval=30, stale_timeout=0.15), Collector())
        async with running(client):
            await eventually(lambda: client.state.reconnects >= 1, timeout=3)
        assert "no message" in (client.state.last_error or "")


async def test_fifty_forced_disconnects_restore_exactly_the_subscriptions() -> None:
    backoff = Backoff(initial=0.001, maximum=0.016, factor=2, jitter=0.25)
    subs = [
        Subscription.ticker("BTC-USDT"),
        Subscription.ticker("ETH-USDT"),
        Subscription.orderbook("TON-USDT", depth=10),
        Subscription.trades("NOT-USDT"),
        Subscription.candles("BTC-USDT", "5min"),
        Subscription.balances(),
        Subscription.active_orders("BTC-USDT"),
    ]
    async with Simulator(sim_config(tick_interval=0.05)) as sim:
        client = FeedClient(fast_config(sim.url, token=TOKEN, backoff=backoff), Collector())
        for sub in subs:
            await client.subscribe(sub)
        async with running(client):
            for _ in range(50):
                await eventually(lambda: client.ready and sim.open_connections == 1)
                assert await sim.drop_connections() == 1
            await eventually(lambda: client.ready and sim.open_connections == 1)
            assert client.state.connects == 51
            assert client.subscriptions == frozenset(subs)
            [server_side] = sim.subscriptions()
            assert server_side == {
                ("ticker", "BTC-USDT", "1day"),
                ("ticker", "ETH-USDT", "1day"),
                ("orderbook", "TON-USDT", "10"),
                ("trades", "NOT-USDT"),
                ("candles", "BTC-USDT", "5min"),
                ("balances",),
                ("activeOrders", "BTC-USDT"),
            }
        subscribes = [m for m, _ in sim.requests if m == "subscribe"]
        auths = [m for m, _ in sim.requests if m == "auth"]
        assert len(subscribes) == 51 * len(subs)  # each restored once per connection, no more
        assert len(auths) == 51
        delays = list(client.state.recent_delays)
        assert len(delays) == 50
        for attempt, delay in enumerate(delays):
            assert backoff.base(attempt) * 0.75 <= delay <= backoff.base(attempt)
        assert max(delays) <= 0.016
        assert min(delays[5:]) >= 0.016 * 0.75  # capped from the fifth attempt on


async def test_backoff_resets_after_a_healthy_connection() -> None:
    backoff = Backoff(initial=0.01, maximum=1.0, factor=2, jitter=0)
    async with Simulator(sim_config(tick_interval=60)) as sim:
        client = FeedClient(fast_config(sim.url, backoff=backoff, healthy_after=0.1), Collector())
        async with running(client):
            for _ in range(3):  # short-lived connections: delays grow
                await eventually(lambda: client.ready)
                await sim.drop_connections()
                await eventually(lambda: not client.ready)
            await eventually(lambda: client.ready)
            await asyncio.sleep(0.15)  # this one stays up long enough to count as healthy
            await sim.drop_connections()
            await eventually(lambda: len(client.state.recent_delays) == 4)
        assert list(client.state.recent_delays) == [0.01, 0.02, 0.04, 0.01]


async def test_accept_then_close_does_not_storm() -> None:
    backoff = Backoff(initial=0.01, maximum=0.1, factor=2, jitter=0.25)
    async with Simulator(sim_config()) as sim:
        sim.close_on_accept = True
        client = FeedClient(fast_config(sim.url, backoff=backoff), Collector())
        async with running(client):
            await asyncio.sleep(1.0)
        # Unbounded retrying would make hundreds of attempts in a second.
        assert 3 <= sim.connection_attempts <= 20
        assert client.state.attempts <= 21


async def test_a_tcp_server_that_hangs_up_at_once_does_not_storm() -> None:
    accepted = 0

    async def hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backoff = Backoff(initial=0.01, maximum=0.1, factor=2, jitter=0.25)
    client = FeedClient(fast_config(f"ws://127.0.0.1:{port}/", backoff=backoff), Collector())
    async with server, running(client):
        await asyncio.sleep(1.0)
    assert 3 <= accepted <= 20
    assert not client.state.connected


async def test_subscribe_and_unsubscribe_at_run_time() -> None:
    async with Simulator(sim_config(tick_interval=0.02)) as sim:
        sink = Collector()
        client = FeedClient(fast_config(sim.url), sink)
        async with running(client):
            await eventually(lambda: client.ready)
            await client.subscribe(Subscription.ticker("ETH-USDT"))
            await eventually(lambda: any(t.symbol == "ETH-USDT" for t in sink.of(Ticker)))
            await client.unsubscribe(Subscription.ticker("ETH-USDT"))
            assert sim.subscriptions() == [frozenset()]
            await asyncio.sleep(0.05)  # frames already in flight may still land
            seen = len(sink.events)
            await asyncio.sleep(0.15)
            assert len(sink.events) == seen
            assert client.subscriptions == frozenset()


async def test_refused_subscriptions_raise_and_do_not_drop_the_connection() -> None:
    async with Simulator(sim_config(tick_interval=60)) as sim:
        client = FeedClient(fast_config(sim.url), Collector())
        async with running(client):
            await eventually(lambda: client.ready)
            with pytest.raises(SymbolNotFound):
                await client.subscribe(Subscription.ticker("NOPE-USDT"))
            assert Subscription.ticker("NOPE-USDT") not in client.subscriptions
            with pytest.raises(SymbolNotOpened):
                await client.subscribe(Subscription.ticker("DOGS-USDT"))
            # A suspended symbol may open later: it is kept and retried on the next connection.
            assert Subscription.ticker("DOGS-USDT") in client.subscriptions
            assert set(client.state.failed_subscriptions) == {
                "ticker:NOPE-USDT:1day",
                "ticker:DOGS-USDT:1day",
            }
            assert client.ready
            assert client.state.connects == 1


async def test_private_channels_need_a_token() -> None:
    client = FeedClient(fast_config("ws://127.0.0.1:9/"), Collector())
    with pytest.raises(ValueError, match="authenticated"):
        await client.subscribe(Subscription.balances())


async def test_rate_limited_requests_back_off_and_retry() -> None:
    async with Simulator(sim_config(tick_interval=0.02)) as sim:
        sink = Collector()
        client = FeedClient(fast_config(sim.url), sink)
        async with running(client):
            await eventually(lambda: client.ready)
            sim.rate_limit_next(3)
            await client.subscribe(Subscription.ticker("BTC-USDT"))
            await eventually(lambda: bool(sink.of(Ticker)))
        assert [m for m, _ in sim.requests].count("subscribe") == 4
        assert client.state.connects == 1


async def test_malformed_pushes_are_counted_and_skipped() -> None:
    async with Simulator(sim_config(tick_interval=0.01)) as sim:
        sink = Collector()
        client = FeedClient(fast_config(sim.url), sink)
        await client.subscribe(Subscription.ticker("BTC-USDT"))
        async with running(client):
            await eventually(lambda: client.ready)
            sim.inject_malformed(30)
            await eventually(lambda: client.state.unparseable + client.state.ignored_messages >= 30)
            before = len(sink.of(Ticker))
            await eventually(lambda: len(sink.of(Ticker)) > before + 5, message="good pushes")
        assert client.state.connects == 1


async def test_a_consumer_that_fails_on_one_event_does_not_stop_the_feed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = Collector()
    failed: list[FeedEvent] = []

    def fails_once(event: FeedEvent) -> None:
        if not failed:
            failed.append(event)
            raise RuntimeError("consumer bug")
        sink(event)

    async with Simulator(sim_config(tick_interval=60)) as sim:
        client = FeedClient(fast_config(sim.url), fails_once)
        await client.subscribe(Subscription.ticker("TON-USDT"))
        async with running(client):
            await eventually(lambda: client.ready and client.state.sink_errors == 1)
            sim.set_price("TON-USDT", Decimal("5.4321"))
            await eventually(lambda: any(t.last == Decimal("5.4321") for t in sink.of(Ticker)))
            assert client.state.connects == 1
            assert client.subscriptions == frozenset({Subscription.ticker("TON-USDT")})
    assert client.state.sink_errors == 1
    assert isinstance(failed[0], Ticker)  # the snapshot on subscribing
    [record] = [r for r in caplog.records if "event consumer failed" in r.getMessage()]
    assert record.name == "alerts.feed"
    assert record.exc_info is not None
    assert "ticker" in record.getMessage()
    assert "TON-USDT" in record.getMessage()


async def test_stop_before_run_is_honoured() -> None:
    client = FeedClient(fast_config("ws://127.0.0.1:9/"), Collector())
    await client.stop()
    await asyncio.wait_for(client.run(), 1)
    assert client.state.attempts == 0


async def test_unsubscribe_racing_a_subscribe_leaves_nothing_behind() -> None:
    async with Simulator(sim_config(tick_interval=60)) as sim:
        client = FeedClient(fast_config(sim.url), Collector())
        async with running(client):
            await eventually(lambda: client.ready)
            sub = Subscription.ticker("ETH-USDT")
            subscribing = asyncio.create_task(client.subscribe(sub))
            await asyncio.sleep(0)  # the subscribe request is on its way
            await client.unsubscribe(sub)
            await subscribing
            await eventually(lambda: sim.subscriptions() == [frozenset()])
            assert client.subscriptions == frozenset()


async def test_tokens_never_reach_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret_ok, secret_bad = "tok-SECRET-valid", "tok-SECRET-wrong"
    async with Simulator(sim_config(tokens={secret_ok: USER})) as sim:
        good = FeedClient(fast_config(sim.url, token=secret_ok), Collector())
        await good.subscribe(Subscription.balances())
        async with running(good):
            await eventually(lambda: good.ready)
            await sim.drop_connections()
            await eventually(lambda: good.state.connects == 2 and good.ready)
        bad = FeedClient(fast_config(sim.url, token=secret_bad), Collector())
        with pytest.raises(InvalidToken):
            await bad.run()
    assert "SECRET" not in repr(good.config)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "connection lost" in logged  # the logs were captured
    assert "SECRET" not in logged


async def test_stop_while_connecting_ends_run() -> None:
    async with Simulator(sim_config(tick_interval=60)) as sim:
        client = FeedClient(fast_config(sim.url), Collector())
        task = asyncio.create_task(client.run())
        await asyncio.sleep(0)  # run() is now opening the connection
        await client.stop()
        await asyncio.wait_for(task, 3)
        assert not client.ready


async def test_cancelling_run_takes_the_keepalive_down_with_it() -> None:
    async with Simulator(SimulatorConfig(tick_interval=3600)) as sim:
        client = FeedClient(fast_config(sim.url, ping_interval=0.05), Collector())
        task = asyncio.create_task(client.run())
        await eventually(lambda: client.ready, message="ready")
        before = {
            t for t in asyncio.all_tasks() if t.get_coro().__qualname__.startswith("FeedClient")
        }
        assert before  # the run task and its helpers
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)  # several ping intervals
        assert all(t.done() for t in before)
        # Cancelled with the run, not left to fail on its own with nobody to see it.
        failed = [t for t in before if not t.cancelled() and t.exception() is not None]
        assert failed == []
