"""The tolerant parsers: a push's `data` (and a REST history answer) into domain events.

Each channel has one item parser built from the bounded readers in `values`; `parse_push`
applies them to a `subscription` push and `parse_orders` to a page of closed orders.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from alerts.domain.events import (
    Balance,
    BalanceUpdate,
    Candle,
    FeedEvent,
    Order,
    OrderBook,
    Ticker,
    Trade,
)
from alerts.feed.errors import error_from_wire
from alerts.feed.protocol.envelope import (
    ACTIVE_ORDERS,
    BALANCES,
    CANDLES,
    ORDERBOOK,
    TICKER,
    TICKERS,
    TRADES,
    decode_frame,
)
from alerts.feed.protocol.values import (
    _CURRENCY,
    PayloadError,
    _Bounds,
    _day_stats,
    _levels,
    _object,
    _objects,
    _opt_dec,
    _opt_str,
    _opt_text,
    _opt_time,
    _req_dec,
    _side,
    _status,
    _symbol,
)

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
