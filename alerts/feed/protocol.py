"""Every assumption about xRocket's channels and payloads, in one place.

The published protocol fixes the envelope (requests, responses, pushes); channel
names, parameters and `data` payloads are assumptions (protocol page §2). When
the real payloads are observed, this module is the one to edit.

Tolerance rules: numbers may be strings or JSON numbers and become `Decimal`
(never binary floats); unknown fields are ignored; missing optional fields are
`None`; a single object where a list is expected, or the reverse, is accepted.
Anything else raises `PayloadError`, which the client counts and skips.

Bounds, because the exchange is not trusted to be sane: a symbol is at most 40 characters of
letters, digits and `-_./`; an id at most 128 characters; a number is finite, not negative,
has at most 40 significant digits and a magnitude within 1e-30..1e30
(`alerts.domain.values.bounded`). A value out of bounds refuses its element (in a list push
the others stand, when the caller collects refusals) with a short, fixed reason; so does
text no database column takes (NUL and other unprintable characters).

The module is longer than most here on purpose: the protocol page asks for
every payload assumption to live in one module, so one edit fixes them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from alerts.domain.events import (
    Balance,
    BalanceUpdate,
    BookLevel,
    Candle,
    DayStats,
    FeedEvent,
    Order,
    OrderBook,
    OrderStatus,
    Side,
    Ticker,
    Trade,
)
from alerts.domain.values import OutOfRange, bounded
from alerts.feed.errors import error_from_wire

TICKER = "ticker"
TICKERS = "tickers"
ORDERBOOK = "orderbook"
TRADES = "trades"
CANDLES = "candles"
BALANCES = "balances"
ACTIVE_ORDERS = "activeOrders"

PUBLIC_CHANNELS = frozenset({TICKER, TICKERS, ORDERBOOK, TRADES, CANDLES})
PRIVATE_CHANNELS = frozenset({BALANCES, ACTIVE_ORDERS})
CHANNELS = PUBLIC_CHANNELS | PRIVATE_CHANNELS
CANDLE_INTERVALS = ("1min", "5min", "15min", "30min", "1hour", "4hour", "1day", "1week")
DEFAULT_TICKER_INTERVAL = "1day"

PUSH_METHOD = "subscription"
PING, AUTH, SUBSCRIBE, UNSUBSCRIBE, UNSUBSCRIBE_ALL = (
    "ping",
    "auth",
    "subscribe",
    "unsubscribe",
    "unsubscribeAll",
)

# Millisecond timestamps below this are taken as seconds (it is year 5138 in seconds).
_SECONDS_CUTOFF = 100_000_000_000
# Timestamps past this (year ~318857) are garbage, not times.
_MAX_MILLIS = 10**16


MAX_SYMBOL = 40
MAX_ID = 128
_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,39}")
_CURRENCY = re.compile(r"[A-Za-z0-9]{1,20}")
# A decimal's text longer than this cannot be 40 digits, a point, a sign and an exponent.
_MAX_NUMBER_TEXT = 64


class PayloadError(ValueError):
    """A push (or one element of a list push) whose `data` cannot be turned into events; its
    message is a short reason from a fixed set, fit for a metric's label."""

    @property
    def reason(self) -> str:
        """Why, in a few words."""
        return str(self.args[0]) if self.args else "unusable"


@dataclass(frozen=True, slots=True)
class Subscription:
    """One channel subscription, with only the parameters that channel takes."""

    channel: str
    symbol: str | None = None
    interval: str | None = None
    depth: int | None = None

    @property
    def private(self) -> bool:
        """True when the channel needs an authenticated connection."""
        return self.channel in PRIVATE_CHANNELS

    def params(self) -> dict[str, Any]:
        """The `params` object of the subscribe request."""
        params: dict[str, Any] = {"channel": self.channel}
        if self.symbol is not None:
            params["symbol"] = self.symbol
        if self.interval is not None:
            params["interval"] = self.interval
        if self.depth is not None:
            params["depth"] = self.depth
        return params

    @classmethod
    def ticker(cls, symbol: str, interval: str = DEFAULT_TICKER_INTERVAL) -> Subscription:
        """Ticker of one symbol."""
        return cls(TICKER, symbol=symbol, interval=interval)

    @classmethod
    def tickers(cls, interval: str = DEFAULT_TICKER_INTERVAL) -> Subscription:
        """Tickers of every symbol."""
        return cls(TICKERS, interval=interval)

    @classmethod
    def orderbook(cls, symbol: str, depth: int | None = None) -> Subscription:
        """Order-book snapshots of one symbol."""
        return cls(ORDERBOOK, symbol=symbol, depth=depth)

    @classmethod
    def trades(cls, symbol: str) -> Subscription:
        """Public trades of one symbol."""
        return cls(TRADES, symbol=symbol)

    @classmethod
    def candles(cls, symbol: str, interval: str) -> Subscription:
        """Candles of one symbol and interval."""
        return cls(CANDLES, symbol=symbol, interval=interval)

    @classmethod
    def balances(cls) -> Subscription:
        """Balances of the authenticated account."""
        return cls(BALANCES)

    @classmethod
    def active_orders(cls, symbol: str | None = None) -> Subscription:
        """Order updates of the authenticated account."""
        return cls(ACTIVE_ORDERS, symbol=symbol)


def encode_request(request_id: str, method: str, params: dict[str, Any] | None = None) -> str:
    """A request frame."""
    frame: dict[str, Any] = {"id": request_id, "method": method}
    if params is not None:
        frame["params"] = params
    return json.dumps(frame, separators=(",", ":"))


_JSON = msgspec.json.Decoder(float_hook=Decimal)


def decode_frame(raw: str | bytes) -> Any:
    """Parse one frame's JSON, with every JSON fraction as a `Decimal`; ValueError if invalid."""
    try:
        return _JSON.decode(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# --- field readers -------------------------------------------------------------------


class _Bounds(PayloadError):
    """A value of the right type but out of bounds: it refuses its element even where the
    field is optional (a wrongly typed optional field is merely dropped)."""


def _number(value: Any) -> Decimal:
    kind = type(value)
    if kind is str:
        if len(value) > _MAX_NUMBER_TEXT:
            raise _Bounds("number too long")
        try:
            return Decimal(value)
        except InvalidOperation:
            raise PayloadError("not a decimal number") from None
    if kind is Decimal:
        return value  # type: ignore[no-any-return]
    if kind is int:
        if not -(10**40) < value < 10**40:
            raise _Bounds("number out of range")
        return Decimal(value)
    if kind is float:
        return Decimal(repr(value))
    raise PayloadError("not a number")


def _dec(value: Any, *, signed: bool = False) -> Decimal:
    try:
        return bounded(_number(value), signed=signed)
    except OutOfRange as exc:
        raise _Bounds(str(exc)) from None


def _req_dec(item: dict[str, Any], key: str) -> Decimal:
    value = item.get(key)
    if value is None:
        raise PayloadError(f"missing {key}")
    return _dec(value)


def _opt_dec(item: dict[str, Any], key: str) -> Decimal | None:
    value = item.get(key)
    if value is None:
        return None
    try:
        return _dec(value)
    except _Bounds:
        raise
    except PayloadError:
        return None


def millis(value: int | None) -> int | None:
    """A plausible Unix time in milliseconds (seconds are scaled up), else None."""
    if value is None or value < 0:
        return None
    if value < _SECONDS_CUTOFF:
        value *= 1000
    return value if value < _MAX_MILLIS else None


def _opt_time(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    try:
        number = _dec(value)
    except PayloadError:
        return None
    return millis(int(number)) if number.adjusted() < 18 else None


def _opt_str(item: dict[str, Any], key: str) -> str | None:
    """An id or a name: a string, or an integer as text; at most 128 characters."""
    value = item.get(key)
    if type(value) is str:
        if len(value) > MAX_ID:
            raise _Bounds("id too long")
        if not value.isprintable():  # NUL and friends: no database text column takes them
            raise _Bounds("unprintable text")
        return value
    if type(value) is int:
        if not -(10**40) < value < 10**40:
            raise _Bounds("id too long")
        return str(value)
    return None


def symbol_ok(symbol: str) -> bool:
    """Whether `symbol` is one the exchange can have (40 characters of the symbol alphabet)."""
    return _SYMBOL.fullmatch(symbol) is not None


def _symbol(item: dict[str, Any], context: dict[str, Any]) -> str:
    symbol = item.get("symbol")
    if type(symbol) is not str or not symbol:
        symbol = context.get("symbol")
    if type(symbol) is not str or not symbol:
        raise PayloadError("missing symbol")
    if not symbol_ok(symbol):
        raise _Bounds("bad symbol")
    return symbol.upper()


def _side(item: dict[str, Any]) -> Side | None:
    value = item.get("side")
    if type(value) is str:
        upper = value.upper()
        if upper == "BUY":
            return Side.BUY
        if upper == "SELL":
            return Side.SELL
    return None


_STATUS_ALIASES = {
    "CANCELLED": OrderStatus.CANCELED,
    "PARTIALLY-FILLED": OrderStatus.PARTIALLY_FILLED,
}


def _status(item: dict[str, Any]) -> OrderStatus:
    value = item.get("status")
    if type(value) is not str:
        raise PayloadError("missing status")
    upper = value.upper()
    try:
        return OrderStatus(upper)
    except ValueError:
        alias = _STATUS_ALIASES.get(upper)
        if alias is None:
            raise PayloadError("unknown order status") from None
        return alias


def _objects(data: Any) -> list[Any]:
    """The elements of `data`, whether it is one object or a list of them."""
    if type(data) is dict:
        return [data]
    if type(data) is list:
        return data
    raise PayloadError("data is neither an object nor a list")


def _object(item: Any) -> dict[str, Any]:
    if type(item) is not dict:
        raise PayloadError("list item is not an object")
    return item


def _levels(value: Any) -> tuple[BookLevel, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        raise PayloadError("book side is not a list")
    levels = []
    for entry in value:
        if type(entry) is list and len(entry) >= 2:
            levels.append(BookLevel(_dec(entry[0]), _dec(entry[1])))
        elif type(entry) is dict:
            levels.append(BookLevel(_req_dec(entry, "price"), _req_dec(entry, "quantity")))
        else:
            raise PayloadError("book level is neither [price, quantity] nor an object")
    return tuple(levels)


# --- channel parsers -----------------------------------------------------------------


def _ticker(item: dict[str, Any], context: dict[str, Any]) -> Ticker:
    return Ticker(
        symbol=_symbol(item, context),
        last=_req_dec(item, "lastPrice"),
        bid=_opt_dec(item, "bidPrice"),
        ask=_opt_dec(item, "askPrice"),
        timestamp=_opt_time(item, "timestamp"),
        day=_day_stats(*(_opt_text(item, key) for key in _DAY_KEYS)),
    )


# Wire names of the 24-hour statistics, in `DayStats` order.
_DAY_KEYS = (
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "priceChange",
    "priceChangePercent",
)


def _opt_text(item: dict[str, Any], key: str) -> str | None:
    """Decimal text kept for later: strings as they are, JSON numbers as their text (read,
    bounded, only when used: see `DayStats`); text too long to be a number is dropped."""
    value = item.get(key)
    kind = type(value)
    if kind is str or kind is Decimal or kind is int:
        text = str(value)
        return text if len(text) <= _MAX_NUMBER_TEXT else None
    return None


def _day_stats(*texts: str | None) -> DayStats | None:
    for text in texts:
        if text is not None:
            return DayStats(*texts)
    return None


def _orderbook(item: dict[str, Any], context: dict[str, Any]) -> OrderBook:
    return OrderBook(
        symbol=_symbol(item, context),
        bids=_levels(item.get("bids")),
        asks=_levels(item.get("asks")),
        timestamp=_opt_time(item, "timestamp"),
    )


def _trade(item: dict[str, Any], context: dict[str, Any]) -> Trade:
    return Trade(
        symbol=_symbol(item, context),
        price=_req_dec(item, "price"),
        quantity=_req_dec(item, "quantity"),
        side=_side(item),
        trade_id=_opt_str(item, "id"),
        timestamp=_opt_time(item, "timestamp"),
    )


def _candle(item: dict[str, Any], context: dict[str, Any]) -> Candle:
    interval = item.get("interval")
    if type(interval) is not str:
        interval = context.get("interval")
    if type(interval) is not str:
        raise PayloadError("missing interval")
    if len(interval) > 16 or not interval.isprintable():
        raise _Bounds("bad interval")
    closed = item.get("closed")
    return Candle(
        symbol=_symbol(item, context),
        interval=interval,
        open=_req_dec(item, "open"),
        high=_req_dec(item, "high"),
        low=_req_dec(item, "low"),
        close=_req_dec(item, "close"),
        closed=closed is True or (type(closed) is str and closed.lower() == "true"),
        volume=_opt_dec(item, "volume"),
        open_time=_opt_time(item, "openTime"),
        close_time=_opt_time(item, "closeTime"),
    )


def _order(item: dict[str, Any], context: dict[str, Any]) -> Order:
    order_id = _opt_str(item, "orderId")
    if not order_id:
        raise PayloadError("missing orderId")
    return Order(
        order_id=order_id,
        symbol=_symbol(item, context),
        status=_status(item),
        side=_side(item),
        type=_opt_str(item, "type"),
        price=_opt_dec(item, "price"),
        quantity=_opt_dec(item, "quantity"),
        executed_quantity=_opt_dec(item, "executedQuantity"),
        average_price=_opt_dec(item, "averagePrice"),
        client_order_id=_opt_str(item, "clientOrderId"),
        created_at=_opt_time(item, "createdAt"),
        updated_at=_opt_time(item, "updatedAt"),
        account=context.get("account"),
    )


def _balance(item: Any) -> Balance:
    item = _object(item)
    currency = item.get("currency")
    if type(currency) is not str or not currency:
        raise PayloadError("missing currency")
    if _CURRENCY.fullmatch(currency) is None:
        raise _Bounds("bad currency")
    locked = _opt_dec(item, "locked")
    return Balance(
        currency=currency.upper(),
        available=_req_dec(item, "available"),
        locked=Decimal(0) if locked is None else locked,
    )


_ItemParser = Callable[[dict[str, Any], dict[str, Any]], FeedEvent]

_ITEM_PARSERS: dict[str, _ItemParser] = {
    TICKER: _ticker,
    TICKERS: _ticker,
    ORDERBOOK: _orderbook,
    TRADES: _trade,
    CANDLES: _candle,
    ACTIVE_ORDERS: _order,
}


def parse_push(
    params: Any, account: str | None = None, refused: list[str] | None = None
) -> list[FeedEvent]:
    """Turn the `params` of one `subscription` push into domain events.

    Raises `PayloadError` (and nothing else) when the push cannot be understood. With
    `refused`, an element of a list push that cannot be is left out and its reason added
    there, and the rest stand (a balances push stands or falls whole: it may be the full
    set, where a missing currency would read as a zero balance).
    """
    try:
        if type(params) is not dict:
            raise PayloadError("params is not an object")
        channel = params.get("channel")
        data = params.get("data")
        if channel == BALANCES:
            balances = tuple(_balance(item) for item in _objects(data))
            return [BalanceUpdate(balances=balances, account=account)]
        parser = _ITEM_PARSERS.get(channel) if type(channel) is str else None
        if parser is None:
            raise PayloadError("unknown channel")
        context = params if account is None else {**params, "account": account}
        events: list[FeedEvent] = []
        for item in _objects(data):
            try:
                events.append(parser(_object(item), context))
            except PayloadError as exc:
                if refused is None:
                    raise
                refused.append(exc.reason)
        return events
    except PayloadError:
        raise
    except (ArithmeticError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        # Belt and braces: a payload shape nobody foresaw is still only a bad push.
        raise PayloadError(f"unexpected payload shape: {type(exc).__name__}") from None


# --- the REST API (protocol page §3) ------------------------------------------------

ORDERS_HISTORY = "/api/v1/orders/history"
HISTORY_LIMIT = 100  # orders a page; a page with fewer is the last


def history_params(start_ms: int, end_ms: int | None = None) -> dict[str, str]:
    """The query of one page of an account's closed orders, from `start_ms` (Unix ms)."""
    params = {"startAt": str(start_ms), "limit": str(HISTORY_LIMIT)}
    if end_ms is not None:
        params["endAt"] = str(end_ms)
    return params


def parse_answer(raw: str | bytes) -> Any:
    """The `data` of a REST answer `{"success": true, "data": ...}`; PayloadError if the
    body is not one, ExchangeError (by its code) if it is an error answer."""
    try:
        body = decode_frame(raw)
    except ValueError:
        raise PayloadError("answer is not JSON") from None
    if type(body) is not dict:
        raise PayloadError("answer is not an object")
    if body.get("success") is not True:
        raise error_from_wire(body.get("error"))
    return body.get("data")


def parse_orders(data: Any, account: str, refused: list[str]) -> list[Order]:
    """The orders of a history answer (each as the `activeOrders` channel would push it);
    an order that cannot be read is left out, its reason added to `refused`."""
    context = {"account": account}
    orders: list[Order] = []
    for item in _objects(data):
        try:
            orders.append(_order(_object(item), context))
        except PayloadError as exc:
            refused.append(exc.reason)
        except (ArithmeticError, ValueError, TypeError, AttributeError) as exc:
            refused.append(f"unexpected payload shape: {type(exc).__name__}")
    return orders


# --- fast path ---------------------------------------------------------------------
#
# The busy channels (tickers, order books, trades) are decoded straight into typed
# structs by msgspec, in C. Any frame that does not fit these exact shapes returns
# None here and takes the tolerant path above, which has the final word; a property
# test holds the two paths to identical results wherever the fast one answers.


class _NotFast(Exception):
    """The typed shape matched but a value needs the tolerant path's judgement."""


class _WireTicker(msgspec.Struct, rename="camel", gc=False):
    last_price: Decimal
    symbol: str | None = None
    bid_price: Decimal | None = None
    ask_price: Decimal | None = None
    # Kept as text: see DayStats. JSON numbers here take the tolerant path.
    open_price: str | None = None
    high_price: str | None = None
    low_price: str | None = None
    volume: str | None = None
    quote_volume: str | None = None
    price_change: str | None = None
    price_change_percent: str | None = None
    timestamp: int | None = None


class _WireTrade(msgspec.Struct, gc=False):
    price: Decimal
    quantity: Decimal
    symbol: str | None = None
    side: str | None = None
    id: str | int | None = None
    timestamp: int | None = None


class _WireBook(msgspec.Struct, gc=False):
    symbol: str | None = None
    bids: list[tuple[Decimal, Decimal]] | None = None
    asks: list[tuple[Decimal, Decimal]] | None = None
    timestamp: int | None = None


class _TickerParams(msgspec.Struct, tag_field="channel", tag=TICKER, gc=False):
    data: _WireTicker | list[_WireTicker]
    symbol: str | None = None


class _TickersParams(msgspec.Struct, tag_field="channel", tag=TICKERS, gc=False):
    data: list[_WireTicker] | _WireTicker
    symbol: str | None = None


class _TradesParams(msgspec.Struct, tag_field="channel", tag=TRADES, gc=False):
    data: list[_WireTrade] | _WireTrade
    symbol: str | None = None


class _BookParams(msgspec.Struct, tag_field="channel", tag=ORDERBOOK, gc=False):
    data: _WireBook | list[_WireBook]
    symbol: str | None = None


class _WirePush(msgspec.Struct, gc=False):
    method: str
    params: _TickerParams | _TickersParams | _TradesParams | _BookParams


_FAST = msgspec.json.Decoder(_WirePush)
_SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}


def _fin(value: Decimal) -> Decimal:
    try:
        return bounded(value)
    except OutOfRange:
        raise _NotFast from None


def _fin_opt(value: Decimal | None) -> Decimal | None:
    return None if value is None else _fin(value)


def _fast_symbol(symbol: str | None, fallback: str | None) -> str:
    symbol = symbol or fallback
    if not symbol or _SYMBOL.fullmatch(symbol) is None:
        raise _NotFast
    return symbol.upper()


def _fast_text(text: str | None) -> str | None:
    if text is not None and len(text) > _MAX_NUMBER_TEXT:
        raise _NotFast
    return text


def _fast_ticker(w: _WireTicker, fallback: str | None) -> Ticker:
    timestamp = w.timestamp
    return Ticker(
        _fast_symbol(w.symbol, fallback),
        _fin(w.last_price),
        _fin_opt(w.bid_price),
        _fin_opt(w.ask_price),
        None if timestamp is None else millis(timestamp),
        _day_stats(
            _fast_text(w.open_price),
            _fast_text(w.high_price),
            _fast_text(w.low_price),
            _fast_text(w.volume),
            _fast_text(w.quote_volume),
            _fast_text(w.price_change),
            _fast_text(w.price_change_percent),
        ),
    )


def _fast_trade(w: _WireTrade, fallback: str | None) -> Trade:
    side = _SIDES.get(w.side.upper()) if w.side is not None else None
    trade_id = w.id if w.id is None or type(w.id) is str else str(w.id)
    if trade_id is not None and (len(trade_id) > MAX_ID or not trade_id.isprintable()):
        raise _NotFast
    return Trade(
        _fast_symbol(w.symbol, fallback),
        _fin(w.price),
        _fin(w.quantity),
        side,
        trade_id,
        millis(w.timestamp),
    )


def _fast_levels(levels: list[tuple[Decimal, Decimal]] | None) -> tuple[BookLevel, ...]:
    if not levels:
        return ()
    return tuple(BookLevel(_fin(price), _fin(quantity)) for price, quantity in levels)


def _fast_book(w: _WireBook, fallback: str | None) -> OrderBook:
    return OrderBook(
        _fast_symbol(w.symbol, fallback),
        _fast_levels(w.bids),
        _fast_levels(w.asks),
        millis(w.timestamp),
    )


_FAST_CONVERTERS: dict[type, tuple[str, Callable[[Any, str | None], FeedEvent]]] = {
    _TickerParams: (TICKER, _fast_ticker),
    _TickersParams: (TICKERS, _fast_ticker),
    _TradesParams: (TRADES, _fast_trade),
    _BookParams: (ORDERBOOK, _fast_book),
}


def parse_fast(raw: str | bytes) -> tuple[str, list[FeedEvent]] | None:
    """(channel, events) for a busy-channel push in the expected shape; None for anything else."""
    try:
        push = _FAST.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    if push.method != PUSH_METHOD:
        return None
    params = push.params
    channel, convert = _FAST_CONVERTERS[type(params)]
    data = params.data
    try:
        if type(data) is list:
            return channel, [convert(item, params.symbol) for item in data]
        return channel, [convert(data, params.symbol)]
    except _NotFast:
        return None
