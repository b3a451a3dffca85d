"""The envelope: channel names, request methods, subscriptions, and frames in and out.

The published protocol fixes the envelope (requests, responses, pushes); the channel names
and their parameters are assumptions (protocol page §2).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

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
