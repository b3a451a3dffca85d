"""Generated frames of every channel's shape (wrong types, huge and tiny numbers, long strings,
nesting) through the parser, the evaluator (rules of every kind armed on the symbols the
frames name) and the recorder, on a real database: 10,000 frames per run, and afterwards no
error escaped, the recorder is not stuck, nothing was dead-lettered, and the next crossing
is recorded and delivered to the fake Bot API."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from alerts.db.migrate import upgrade
from alerts.db.models import Account, DeadLetter, Destination, Event, User
from alerts.db.session import Database
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.worker import DeliveryWorker
from alerts.engine.runner import Engine, EngineConfig
from alerts.feed import FeedClient
from alerts.security import SecretBox
from alerts.services.rule_schemas import rule_create_adapter
from alerts.services.rules import create_rule
from tests.api_helpers import SECRET_KEY
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import fast_config

FRAMES_PER_EXAMPLE = 100
EXAMPLES = 100  # 10,000 frames
CHAT = 4242
T0 = datetime(2026, 12, 1, tzinfo=UTC)


class Raw(str):
    """JSON text to put in a frame as it is (a number JSON libraries would not write)."""


def dump(value: Any) -> str:
    """JSON, with `Raw` values spliced in verbatim."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


# Mostly drawn from pools of known trouble, with a few generated values: cheap to draw, so
# that 10,000 frames a run take seconds, not minutes.
_NUMBER_TEXTS = ["1e5000000", "-1e-5000000", "1e-400", "0", "-0", "70000.5", "1" * 400, "1e30"]
numbers = st.one_of(
    st.sampled_from([*_NUMBER_TEXTS, "1e31", "0.000000001", "-5"]).map(Raw),
    st.sampled_from(["NaN", "sNaN", "-Infinity", "7" * 10_000, "", " 7 ", "0x10", "70000.5"]),
    st.integers(min_value=-(10**50), max_value=10**50),
    st.floats(allow_nan=False, allow_infinity=False),
)
strings = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=8),
    st.sampled_from(["BTC-USDT", "btc-usdt", "ETH-USDT", "S" * 305, "t" * 500, "USDT", "x\x00"]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["a", "data", "symbol"]), scalars, max_size=2),
    st.sampled_from([[[[[[]]]]], {"x": {"y": {"z": []}}}]),
)
FIELDS = [
    "symbol", "lastPrice", "bidPrice", "askPrice", "timestamp", "price", "quantity", "side",
    "id", "bids", "asks", "open", "high", "low", "close", "closed", "interval", "volume",
    "openTime", "closeTime", "orderId", "clientOrderId", "status", "type", "executedQuantity",
    "averagePrice", "createdAt", "updatedAt", "currency", "available", "locked",
    "priceChangePercent",
]  # fmt: skip
field_values = st.one_of(
    values,
    st.sampled_from(["t" * 500, "S" * 305, "x" * 129, "7" * 10_000]),
    st.sampled_from(["FILLED", "CANCELED", "NEW", "BUY", "SELL", "1min", True]),
    st.lists(st.tuples(numbers, numbers).map(list), max_size=3),
)
items = st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=8)
channels = st.sampled_from(
    ["ticker", "tickers", "orderbook", "trades", "candles", "balances", "activeOrders"]
)
random_frames = st.builds(
    lambda channel, symbol, interval, data: dump(
        {
            "method": "subscription",
            "params": {"channel": channel, "symbol": symbol, "interval": interval, "data": data},
        }
    ),
    channels,
    st.one_of(st.just("BTC-USDT"), strings),
    st.one_of(st.just("1min"), strings),
    st.one_of(items, st.lists(items, max_size=3), values),
)
# Valid pushes for the armed rules, each with a field or two replaced by trouble: the frames
# that get past the parser's shape checks and so reach the evaluator and the recorder.
TEMPLATES: dict[str, dict[str, Any]] = {
    "ticker": {"symbol": "BTC-USDT", "lastPrice": "70001", "bidPrice": "70000"},
    "trades": {"symbol": "BTC-USDT", "id": "7", "price": "70000", "quantity": "2"},
    "orderbook": {"symbol": "BTC-USDT", "bids": [["69000", "1"]], "asks": [["71000", "1"]]},
    "candles": {
        "symbol": "BTC-USDT", "interval": "1min", "open": "1", "high": "9", "low": "1",
        "close": "9", "closed": True, "openTime": 1767225600000,
    },
    "activeOrders": {
        "orderId": "o1", "symbol": "BTC-USDT", "status": "FILLED", "side": "BUY",
        "price": "1", "quantity": "1", "executedQuantity": "1", "averagePrice": "1",
    },
    "balances": {"currency": "USDT", "available": "10", "locked": "0"},
}  # fmt: skip
mutated_frames = st.builds(
    lambda channel, changes, serial: dump(
        {
            "method": "subscription",
            "params": {
                "channel": channel,
                "data": [{**TEMPLATES[channel], "id": serial, "orderId": serial, **changes}],
            },
        }
    ),
    st.sampled_from(sorted(TEMPLATES)),
    st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=2),
    st.one_of(st.integers(0, 10**6).map(str), st.sampled_from(["t" * 500, "x" * 129, ""])),
)
frames = st.one_of(random_frames, mutated_frames, mutated_frames)


@dataclass
class Pipeline:
    loop: asyncio.AbstractEventLoop
    db: Database
    engine: Engine
    private: FeedClient


EVERY = {"trigger": "every", "cooldown_seconds": 1}
RULES = [
    {"kind": "price_cross", "symbol": "BTC-USDT", "level": "70000", **EVERY},
    {"kind": "price_range", "symbol": "BTC-USDT", "low": "1", "high": "100", **EVERY},
    {"kind": "percent_change", "symbol": "BTC-USDT", "percent": "1", "window_seconds": 60},
    {"kind": "candle_close", "symbol": "BTC-USDT", "interval": "1min", "level": "5",
     "direction": "above"},
    {"kind": "large_trade", "symbol": "BTC-USDT", "min_quantity": "1", **EVERY},
    {"kind": "spread", "symbol": "BTC-USDT", "percent": "0.1", **EVERY},
    {"kind": "order", "account_id": 1, "statuses": ["FILLED", "CANCELED"], **EVERY},
    {"kind": "balance", "account_id": 1, **EVERY},
]  # fmt: skip


@pytest.fixture
def pipeline(database_url: str) -> Iterator[Pipeline]:
    upgrade(database_url)
    db = Database(database_url)
    box = SecretBox(SECRET_KEY)
    with db.session() as session:
        user = User(name="fuzz", telegram_user_id=CHAT)
        session.add(user)
        session.flush()
        assert user.id is not None
        session.add(Destination(user_id=user.id, kind="telegram", name="me", chat_id=CHAT))
        session.add(Account(user_id=user.id, name="a", token_sealed=box.seal("t")))
        session.commit()
        for body in RULES:
            create_rule(session, user.id, rule_create_adapter.validate_python(body), now=_now())
    loop = asyncio.new_event_loop()
    config = EngineConfig(feed=fast_config("ws://127.0.0.1:9/"))
    # Each look at the clock is two seconds on: cooldowns never keep a rule from the recorder.
    ticks = itertools.count()
    engine = Engine(db, config, box, clock=lambda: T0 + timedelta(seconds=2 * next(ticks)))
    loop.run_until_complete(asyncio.to_thread(engine._load_rules))
    private = FeedClient(fast_config("ws://127.0.0.1:9/", account="1"), engine._on_event)
    try:
        yield Pipeline(loop, db, engine, private)
    finally:
        loop.close()
        db.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(frames, min_size=FRAMES_PER_EXAMPLE, max_size=FRAMES_PER_EXAMPLE))
def test_ten_thousand_generated_frames_stop_nothing(pipeline: Pipeline, batch: list[str]) -> None:
    engine = pipeline.engine
    for frame in batch:
        engine.public._on_frame(frame)
        pipeline.private._on_frame(frame)
    assert engine.public.state.sink_errors == 0 and pipeline.private.state.sink_errors == 0
    pipeline.loop.run_until_complete(engine.recorder.flush())
    assert engine.recorder.failing_for == 0 and engine.recorder.dead_lettered == 0


def test_after_the_fuzz_the_next_crossing_is_delivered(pipeline: Pipeline) -> None:
    """Run the fuzz's worst shapes through first, then a crossing: it reaches Telegram."""
    engine = pipeline.engine
    worst = [
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": Raw("1e5000000")}),
        ("trades", [{"symbol": "BTC-USDT", "id": "t" * 500, "price": "1", "quantity": "5"}]),
        ("ticker", {"symbol": "S" * 305, "lastPrice": "1"}),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "69999"}),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "70001"}),
    ]
    for channel, data in worst:
        push = {"method": "subscription", "params": {"channel": channel, "data": data}}
        engine.public._on_frame(dump(push))

    async def deliver() -> list[str]:
        await engine.recorder.flush()
        async with FakeTelegram() as tg:
            telegram = TelegramNotifier(TOKEN, api_url=tg.url)
            worker = DeliveryWorker(pipeline.db, SecretBox(SECRET_KEY), telegram=telegram)
            try:
                while await worker.run_once():
                    pass
            finally:
                await telegram.close()
            return tg.texts(CHAT)

    texts = pipeline.loop.run_until_complete(deliver())
    assert any("crossed 70000 up" in t for t in texts)
    with pipeline.db.session() as session:
        assert session.exec(select(DeadLetter)).all() == []
        kinds = {e.kind for e in session.exec(select(Event).order_by(col(Event.id)))}
    assert "price_cross" in kinds
