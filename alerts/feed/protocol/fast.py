"""The fast path: busy-channel pushes decoded straight into typed structs by msgspec, in C.

Any frame that does not fit these exact shapes returns None here and takes the tolerant path
(`payloads.parse_push`), which has the final word; a property test holds the two paths to
identical results wherever the fast one answers.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from alerts.domain.events import BookLevel, FeedEvent, OrderBook, Side, Ticker, Trade
from alerts.domain.values import OutOfRange, bounded
from alerts.feed.protocol.envelope import ORDERBOOK, PUSH_METHOD, TICKER, TICKERS, TRADES
from alerts.feed.protocol.values import (
    _MAX_NUMBER_TEXT,
    _SYMBOL,
    MAX_ID,
    _day_stats,
    millis,
)


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
