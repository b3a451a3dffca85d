"""The exchange's REST API client against the simulator's REST API over real HTTP, with its
fault switches: slow answers, 5xx, 429 with Retry-After, malformed bodies, refused tokens,
and paging. Never a crash; a catch-up that cannot read the history yet tries again, so no
missed fill is lost."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from alerts.domain.events import Order
from alerts.engine.accounts import AccountRules
from alerts.engine.catchup import WHILE_DOWN, CatchUp
from alerts.feed.backoff import Backoff
from alerts.feed.errors import InvalidToken
from alerts.feed.rest import ExchangeRest, RestUnavailable
from alerts.simulator import Simulator, SimulatorConfig
from tests.feed_helpers import eventually

TOKEN = "rest-token"
FAST = Backoff(initial=0.01, maximum=0.05, factor=2, jitter=0)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    config = SimulatorConfig(tokens={TOKEN: 7}, blocked_tokens=frozenset({"banned"}))
    async with Simulator(config) as simulator:
        yield simulator


@pytest.fixture
async def rest(sim: Simulator) -> AsyncIterator[ExchangeRest]:
    client = ExchangeRest(sim.api_url, timeout=0.3, retries=3, backoff=FAST)
    yield client
    await client.close()


def _fills(sim: Simulator, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        order = sim.place_order(7, "BTC-USDT", "BUY", Decimal("1"), Decimal("0.5"))
        sim.fill_order(order)
        ids.append(order)
    return ids


async def test_the_history_is_read_page_after_page(sim: Simulator, rest: ExchangeRest) -> None:
    ids = _fills(sim, 250)
    orders = await rest.order_history(TOKEN, "3", 0)
    assert [o.order_id for o in orders] == ids  # oldest first, each once, three pages
    assert {o.account for o in orders} == {"3"} and orders[0].status.value == "FILLED"
    # Three pages of 100, or one more when a page's last millisecond is shared: it comes again.
    assert 3 <= sum("orders/history" in p for p in sim.rest_faults.requests) <= 4


async def test_5xx_slow_and_malformed_answers_are_retried(
    sim: Simulator, rest: ExchangeRest
) -> None:
    [order] = _fills(sim, 1)
    sim.rest_faults.fail_next(503, count=2)
    sim.rest_faults.malformed = 1
    orders = await rest.order_history(TOKEN, "1", 0)
    assert [o.order_id for o in orders] == [order]
    sim.rest_faults.delay = 0.5  # longer than the client waits
    with pytest.raises(RestUnavailable, match="no answer in time"):
        await rest.order_history(TOKEN, "1", 0)
    sim.rest_faults.delay = 0
    sim.rest_faults.fail_next(500, count=10)
    with pytest.raises(RestUnavailable, match="HTTP 500"):
        await rest.order_history(TOKEN, "1", 0)


async def test_a_429_waits_for_its_retry_after(sim: Simulator, rest: ExchangeRest) -> None:
    _fills(sim, 1)
    sim.rest_faults.fail_next(429, retry_after=0.4)
    started = time.monotonic()
    assert len(await rest.order_history(TOKEN, "1", 0)) == 1
    assert time.monotonic() - started >= 0.4


async def test_a_refused_token_is_not_retried(sim: Simulator, rest: ExchangeRest) -> None:
    with pytest.raises(InvalidToken):
        await rest.order_history("not-a-token", "1", 0)
    assert sum("orders/history" in p for p in sim.rest_faults.requests) == 1


async def test_a_catch_up_that_cannot_read_yet_tries_again_and_loses_nothing(
    sim: Simulator, rest: ExchangeRest
) -> None:
    accounts = AccountRules()
    accounts.restore(1, {"since": 0})  # an account followed before, then a gap
    reported: list[tuple[Order, str]] = []
    catch_up = CatchUp(rest, accounts, lambda o, why: reported.append((o, why)), retry=FAST)
    ids = _fills(sim, 3)
    sim.rest_faults.fail_next(503, count=12)  # three catch-up attempts' worth of retries
    catch_up.connected(1, TOKEN)  # (the first time: "while the service was stopped")
    catch_up.disconnected(1)
    catch_up.connected(1, TOKEN)
    await eventually(lambda: len(reported) == 3, timeout=5, message="the missed fills")
    assert [o.order_id for o, _ in reported] == ids
    assert {why for _, why in reported} == {WHILE_DOWN}
    assert accounts.since(1) is not None and accounts.since(1) > 0
    await asyncio.sleep(0.1)
    assert len(reported) == 3
    await catch_up.close()


async def test_hostile_orders_in_the_history_are_refused_alone(
    sim: Simulator, rest: ExchangeRest
) -> None:
    """Out-of-bounds values in a history answer cost only their own order, never the read."""
    good, huge, long_symbol, nul = _fills(sim, 4)
    sim._accounts.orders[huge].quantity = Decimal("1e5000000")
    sim._accounts.orders[long_symbol].symbol = "X" * 305
    sim._accounts.orders[nul].client_order_id = "a\x00b"
    orders = await rest.order_history(TOKEN, "3", 0)
    assert [o.order_id for o in orders] == [good]
