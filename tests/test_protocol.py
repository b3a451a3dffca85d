"""The payload parser: every channel, every tolerance rule, and garbage that must not escape."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.domain.events import (
    Balance,
    BalanceUpdate,
    BookLevel,
    Candle,
    DayStats,
    Order,
    OrderBook,
    OrderStatus,
    Side,
    Ticker,
    Trade,
    utc,
)
from alerts.feed.protocol import (
    PayloadError,
    Subscription,
    decode_frame,
    parse_fast,
    parse_push,
)

TICKER_DATA = {
    "symbol": "BTC-USDT",
    "lastPrice": "70000.10",
    "openPrice": "69000",
    "highPrice": "70500.5",
    "lowPrice": "68800",
    "volume": "12.5",
    "quoteVolume": "875000",
    "priceChange": "1000.10",
    "priceChangePercent": "1.45",
    "bidPrice": "70000.00",
    "askPrice": "70000.20",
    "timestamp": 1767225600000,
}


def push(channel: str, data: Any, **params: Any) -> dict[str, Any]:
    """The `params` of a push, as the client receives them after JSON decoding."""
    frame = {"method": "subscription", "params": {"channel": channel, **params, "data": data}}
    decoded = decode_frame(json.dumps(frame))
    assert isinstance(decoded, dict)
    return decoded["params"]  # type: ignore[no-any-return]


def test_ticker_is_fully_typed() -> None:
    [event] = parse_push(push("ticker", TICKER_DATA, symbol="BTC-USDT", interval="1day"))
    assert event == Ticker(
        symbol="BTC-USDT",
        last=Decimal("70000.10"),
        bid=Decimal("70000.00"),
        ask=Decimal("70000.20"),
        timestamp=1767225600000,
        day=DayStats("69000", "70500.5", "68800", "12.5", "875000", "1000.10", "1.45"),
    )
    assert utc(event.timestamp) == datetime(2026, 1, 1, tzinfo=UTC)
    assert event.day is not None
    assert event.day.open == Decimal(69000)
    assert event.day.change_percent == Decimal("1.45")
    assert event.day.quote_volume == Decimal(875000)


def test_day_statistics_are_decimals_when_read_and_none_when_garbage() -> None:
    data = {"lastPrice": "1", "openPrice": 2.5, "highPrice": "NaN", "volume": "lots"}
    [event] = parse_push(push("ticker", data, symbol="TON-USDT"))
    assert isinstance(event, Ticker)
    assert event.day is not None
    assert event.day.open == Decimal("2.5")
    assert event.day.high is None
    assert event.day.volume is None
    assert event.day.low is None


def test_json_numbers_become_exact_decimals_not_floats() -> None:
    frame = '{"method":"subscription","params":{"channel":"ticker","data":'
    frame += '{"symbol":"BTC-USDT","lastPrice":0.1,"bidPrice":70000,"askPrice":1e2}}}'
    [event] = parse_push(decode_frame(frame)["params"])
    assert isinstance(event, Ticker)
    assert event.last == Decimal("0.1")  # a float would give 0.1000000000000000055...
    assert event.bid == Decimal(70000)
    assert event.ask == Decimal(100)


def test_missing_optional_fields_and_unknown_fields_are_fine() -> None:
    data = {"lastPrice": "1.5", "brandNewField": {"x": [1, 2]}}
    [event] = parse_push(push("ticker", data, symbol="TON-USDT"))
    assert event == Ticker(symbol="TON-USDT", last=Decimal("1.5"))


def test_symbol_from_params_when_data_lacks_it_and_is_normalised() -> None:
    [event] = parse_push(push("ticker", {"lastPrice": "2", "symbol": "ton-usdt"}))
    assert isinstance(event, Ticker)
    assert event.symbol == "TON-USDT"


def test_tickers_channel_gives_one_event_per_symbol() -> None:
    data = [dict(TICKER_DATA), {**TICKER_DATA, "symbol": "ETH-USDT", "lastPrice": "3500"}]
    events = parse_push(push("tickers", data, interval="1day"))
    assert [(e.symbol, e.last) for e in events if isinstance(e, Ticker)] == [
        ("BTC-USDT", Decimal("70000.10")),
        ("ETH-USDT", Decimal("3500")),
    ]


def test_list_where_object_expected_and_object_where_list_expected() -> None:
    assert len(parse_push(push("ticker", [TICKER_DATA, TICKER_DATA]))) == 2
    trade = {"id": 7, "price": "100", "quantity": "2", "side": "sell", "timestamp": 1}
    [event] = parse_push(push("trades", trade, symbol="BTC-USDT"))
    assert event == Trade(
        symbol="BTC-USDT",
        price=Decimal(100),
        quantity=Decimal(2),
        side=Side.SELL,
        trade_id="7",
        timestamp=1000,  # 1 is taken as seconds
    )
    assert event.notional == Decimal(200)


def test_orderbook_levels_best_first() -> None:
    data = {
        "symbol": "BTC-USDT",
        "bids": [["69999.9", "1.5"], [69999, 2]],
        "asks": [["70000.1", "0.5"]],
        "timestamp": 1767225600000,
    }
    [event] = parse_push(push("orderbook", data, symbol="BTC-USDT", depth=20))
    assert isinstance(event, OrderBook)
    assert event.bids == (
        BookLevel(Decimal("69999.9"), Decimal("1.5")),
        BookLevel(Decimal(69999), Decimal(2)),
    )
    assert event.best_bid == Decimal("69999.9")
    assert event.best_ask == Decimal("70000.1")


def test_candle_closed_flag_and_interval() -> None:
    data = {
        "symbol": "BTC-USDT",
        "interval": "1min",
        "openTime": 1767225600000,
        "closeTime": 1767225659999,
        "open": "1",
        "high": "3",
        "low": "0.5",
        "close": "2",
        "volume": "10",
        "closed": True,
    }
    [event] = parse_push(push("candles", data, symbol="BTC-USDT", interval="1min"))
    assert isinstance(event, Candle)
    assert event.closed is True
    assert (event.open, event.high, event.low, event.close) == tuple(
        Decimal(v) for v in ("1", "3", "0.5", "2")
    )
    open_candle = {**data, "closed": False}
    [still_open] = parse_push(push("candles", open_candle, interval="1min"))
    assert isinstance(still_open, Candle)
    assert still_open.closed is False


def test_balances_make_one_update_with_the_account() -> None:
    data = [
        {"currency": "USDT", "available": "100.5", "locked": "10"},
        {"currency": "btc", "available": 0.25},
    ]
    [event] = parse_push(push("balances", data), account="acct-1")
    assert event == BalanceUpdate(
        balances=(
            Balance("USDT", Decimal("100.5"), Decimal(10)),
            Balance("BTC", Decimal("0.25"), Decimal(0)),
        ),
        account="acct-1",
    )


def test_orders_with_status_aliases_and_account() -> None:
    order = {
        "orderId": 123,
        "clientOrderId": "mine-1",
        "symbol": "BTC-USDT",
        "side": "BUY",
        "type": "LIMIT",
        "status": "cancelled",
        "price": "70000",
        "quantity": "0.1",
        "executedQuantity": "0",
        "averagePrice": None,
        "createdAt": 1767225600000,
        "updatedAt": 1767225601000,
    }
    [event] = parse_push(push("activeOrders", order), account="a")
    assert isinstance(event, Order)
    assert event.order_id == "123"
    assert event.status is OrderStatus.CANCELED
    assert event.status.is_final
    assert event.average_price is None
    assert event.account == "a"


@pytest.mark.parametrize(
    ("channel", "data", "reason"),
    [
        ("ticker", {"symbol": "BTC-USDT"}, "missing lastPrice"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "abc"}, "not a decimal"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "NaN"}, "not a finite"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "Infinity"}, "not a finite"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": True}, "not a number"),
        ("ticker", {"lastPrice": "1"}, "missing symbol"),
        ("ticker", "hello", "neither an object nor a list"),
        ("ticker", [1, 2], "not an object"),
        ("trades", [{"price": "1", "symbol": "X-Y"}], "missing quantity"),
        ("orderbook", {"symbol": "X-Y", "bids": "x"}, "not a list"),
        ("orderbook", {"symbol": "X-Y", "bids": [["1"]]}, "neither"),
        ("activeOrders", {"orderId": "1", "symbol": "X-Y", "status": "WEIRD"}, "unknown order"),
        ("activeOrders", {"symbol": "X-Y", "status": "NEW"}, "missing orderId"),
        ("balances", [{"available": "1"}], "missing currency"),
        ("nonsense", {}, "unknown channel"),
    ],
)
def test_unusable_pushes_raise_payload_error(channel: str, data: Any, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_push(push(channel, data))


def test_wrongly_typed_optional_fields_are_dropped_not_fatal() -> None:
    data = {"symbol": "BTC-USDT", "lastPrice": "1", "bidPrice": [], "timestamp": "soon"}
    [event] = parse_push(push("ticker", data))
    assert event == Ticker(symbol="BTC-USDT", last=Decimal(1))


def test_subscription_params_carry_only_what_applies() -> None:
    assert Subscription.ticker("BTC-USDT").params() == {
        "channel": "ticker",
        "symbol": "BTC-USDT",
        "interval": "1day",
    }
    assert Subscription.balances().params() == {"channel": "balances"}
    assert Subscription.active_orders().private
    assert not Subscription.orderbook("BTC-USDT", 5).private


# --- property-based: nothing but PayloadError ever escapes ----------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["1", "0.5", "-3", "1e5", "NaN", "inf", "", " 7 ", "1e999999"]),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)
field_names = st.sampled_from(
    [
        "symbol", "lastPrice", "bidPrice", "askPrice", "timestamp", "price", "quantity",
        "side", "id", "bids", "asks", "open", "high", "low", "close", "closed", "interval",
        "orderId", "status", "currency", "available", "locked", "executedQuantity",
    ]
)  # fmt: skip
plausible_items = st.dictionaries(field_names, json_values, max_size=8)
channels = st.sampled_from(
    ["ticker", "tickers", "orderbook", "trades", "candles", "balances", "activeOrders", "x"]
)
params_strategy = st.fixed_dictionaries(
    {"channel": channels},
    optional={
        "symbol": json_values,
        "interval": json_values,
        "data": st.one_of(plausible_items, st.lists(plausible_items, max_size=4), json_values),
    },
)


frames = st.lists(st.one_of(params_strategy, json_values), min_size=1, max_size=8)


@settings(max_examples=600, deadline=None)
@given(batch=frames)
def test_parser_never_raises_anything_but_payload_error(batch: list[Any]) -> None:
    for params in batch:
        try:
            events = parse_push(params, account="acct")
        except PayloadError:
            continue
        for event in events:
            for name in ("last", "price", "quantity", "bid", "ask", "open", "close"):
                value = getattr(event, name, None)
                assert value is None or (isinstance(value, Decimal) and value.is_finite())


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_decode_frame_only_raises_value_errors(text: str | bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_frame(text)


# --- the fast path agrees with the tolerant path wherever it answers -------------------

numbers = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False, places=8).map(str),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from(["NaN", "Infinity", "1e5", " 7 ", "abc", "", "-0"]),
)
maybe = st.one_of(st.none(), numbers)
symbols = st.sampled_from(["BTC-USDT", "eth-usdt", "", "X"])
ticker_items = st.fixed_dictionaries(
    {"lastPrice": numbers},
    optional={
        "symbol": symbols,
        "bidPrice": maybe,
        "askPrice": maybe,
        "volume": maybe,
        "openPrice": maybe,
        "priceChangePercent": maybe,
        "timestamp": st.one_of(st.integers(-5, 10**17), st.just("1767225600000")),
        "extra": json_scalars,
    },
)
trade_items = st.fixed_dictionaries(
    {"price": numbers, "quantity": numbers},
    optional={
        "symbol": symbols,
        "side": st.sampled_from(["BUY", "sell", "hold", 1]),
        "id": st.one_of(st.integers(0, 10**9), st.text(max_size=5), st.booleans()),
        "timestamp": st.integers(-5, 10**17),
    },
)
levels = st.lists(st.lists(numbers, min_size=1, max_size=3), max_size=4)
book_items = st.fixed_dictionaries(
    {}, optional={"symbol": symbols, "bids": levels, "asks": levels, "timestamp": st.integers()}
)
hot_pushes = st.one_of(
    st.tuples(st.sampled_from(["ticker", "tickers"]), ticker_items),
    st.tuples(st.just("trades"), trade_items),
    st.tuples(st.just("orderbook"), book_items),
).flatmap(
    lambda pair: st.fixed_dictionaries(
        {
            "channel": st.just(pair[0]),
            "data": st.one_of(st.just(pair[1]), st.just([pair[1], pair[1]])),
        },
        optional={"symbol": symbols},
    )
)


@settings(max_examples=1500, deadline=None)
@given(params=hot_pushes)
def test_fast_path_gives_exactly_what_the_tolerant_path_gives(params: dict[str, Any]) -> None:
    raw = json.dumps({"method": "subscription", "params": params})
    fast = parse_fast(raw)
    if fast is None:
        return  # the tolerant path decides alone
    try:
        slow = parse_push(decode_frame(raw)["params"])
    except PayloadError:
        raise AssertionError(f"fast path accepted what the tolerant path refuses: {raw}") from None
    assert fast == (params["channel"], slow)


def test_fast_path_covers_the_expected_shapes() -> None:
    raw = json.dumps(
        {"method": "subscription", "params": {"channel": "ticker", "data": TICKER_DATA}}
    )
    assert parse_fast(raw) is not None
    assert parse_fast('{"id": "1", "result": {"success": true}}') is None
    assert parse_fast('{"method": "subscription", "params": {"channel": "balances"}}') is None


# --- bounds: what no price, symbol or id can be ----------------------------------------


@pytest.mark.parametrize(
    ("channel", "data", "reason"),
    [
        ("ticker", {"symbol": "S" * 305, "lastPrice": "1"}, "bad symbol"),
        ("ticker", {"symbol": "BTC USDT", "lastPrice": "1"}, "bad symbol"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "1e5000000"}, "number out of range"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "-1e-5000000"}, "negative number"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "1e-31"}, "number out of range"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "7" * 10_000}, "number too long"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "1." + "1" * 45}, "too many digits"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "sNaN"}, "not a finite number"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": 10**50}, "number out of range"),
        ("ticker", {"symbol": "BTC-USDT", "lastPrice": "1", "bidPrice": "1e99"}, "out of range"),
        ("trades", [{"symbol": "X-Y", "price": "1", "quantity": "1", "id": "t" * 500}],
         "id too long"),
        ("activeOrders", {"orderId": "o" * 129, "symbol": "X-Y", "status": "NEW"}, "id too long"),
        ("balances", [{"currency": "U" * 21, "available": "1"}], "bad currency"),
        ("candles", {"symbol": "X-Y", "interval": "i" * 17, "open": "1", "high": "1",
                     "low": "1", "close": "1"}, "bad interval"),
    ],
)  # fmt: skip
def test_values_out_of_bounds_refuse_their_push(channel: str, data: Any, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        parse_push(push(channel, data))


def test_a_refused_element_of_a_list_push_leaves_the_others() -> None:
    good = {"symbol": "BTC-USDT", "lastPrice": "70000"}
    bad = {"symbol": "ETH-USDT", "lastPrice": "1e5000000"}
    refused: list[str] = []
    events = parse_push(push("tickers", [good, bad, "x", good]), refused=refused)
    assert [e.symbol for e in events] == ["BTC-USDT", "BTC-USDT"]  # type: ignore[attr-defined]
    assert refused == ["number out of range", "list item is not an object"]


def test_numbers_within_bounds_are_kept_exact_and_short() -> None:
    [event] = parse_push(push("ticker", {"symbol": "BTC-USDT", "lastPrice": "1." + "0" * 60}))
    assert event.last == 1 and len(str(event.last)) <= 42  # type: ignore[attr-defined]
    [event] = parse_push(push("ticker", {"symbol": "BTC-USDT", "lastPrice": "0E-5000000"}))
    assert str(event.last) == "0"  # type: ignore[attr-defined]
    data = {"symbol": "BTC-USDT", "lastPrice": "1", "priceChangePercent": "1e5000000"}
    [event] = parse_push(push("ticker", data))
    assert event.day.change_percent is None  # type: ignore[attr-defined]  # shown only: dropped


def test_text_no_database_takes_refuses_its_element() -> None:
    order = {"orderId": "o\x001", "symbol": "X-Y", "status": "FILLED"}
    with pytest.raises(PayloadError, match="unprintable text"):
        parse_push(push("activeOrders", order))
    trade = {"symbol": "X-Y", "price": "1", "quantity": "1", "id": "t\x00"}
    with pytest.raises(PayloadError, match="unprintable text"):
        parse_push(push("trades", [trade]))
