"""Typed, immutable market and account events produced by the feed.

Events are `msgspec.Struct`s rather than frozen dataclasses: a push becomes
an event on the hot path, and a frozen dataclass with a dozen fields costs
about twenty times as much to build. Times are Unix milliseconds, as the
exchange sends them; `utc()` turns one into an aware datetime when needed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from msgspec import Struct


def utc(millis: int | None) -> datetime | None:
    """An aware UTC datetime from Unix milliseconds (None stays None)."""
    return None if millis is None else datetime.fromtimestamp(millis / 1000, UTC)


class Event(Struct, frozen=True, gc=False):
    """Base of every feed event: immutable, compared by value."""


class Side(StrEnum):
    """Which side of the book a trade or an order is on."""

    BUY = "BUY"
    SELL = "SELL"


class OrderStatus(StrEnum):
    """Life-cycle states of an exchange order."""

    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        """True when the order is no longer active."""
        return self not in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class Ticker(Event, frozen=True, gc=False):
    """Latest 24h statistics and best prices of one symbol."""

    symbol: str
    last: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    volume: Decimal | None = None
    quote_volume: Decimal | None = None
    change: Decimal | None = None
    change_percent: Decimal | None = None
    timestamp: int | None = None


class BookLevel(Event, frozen=True, gc=False):
    """One price level of an order book."""

    price: Decimal
    quantity: Decimal


class OrderBook(Event, frozen=True, gc=False):
    """A full snapshot of the top of one symbol's order book, best levels first."""

    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    timestamp: int | None = None

    @property
    def best_bid(self) -> Decimal | None:
        """Highest bid price, if any."""
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> Decimal | None:
        """Lowest ask price, if any."""
        return self.asks[0].price if self.asks else None


class Trade(Event, frozen=True, gc=False):
    """One public trade."""

    symbol: str
    price: Decimal
    quantity: Decimal
    side: Side | None = None
    trade_id: str | None = None
    timestamp: int | None = None

    @property
    def notional(self) -> Decimal:
        """Price times quantity, in the quote currency."""
        return self.price * self.quantity


class Candle(Event, frozen=True, gc=False):
    """One candle; `closed` is true once it is final."""

    symbol: str
    interval: str
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    closed: bool
    volume: Decimal | None = None
    open_time: int | None = None
    close_time: int | None = None


class Balance(Event, frozen=True, gc=False):
    """Available and locked amounts of one currency."""

    currency: str
    available: Decimal
    locked: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        """Available plus locked."""
        return self.available + self.locked


class BalanceUpdate(Event, frozen=True, gc=False):
    """Balances of one account; `full` when it is the complete set, else only changes."""

    balances: tuple[Balance, ...]
    full: bool = False
    account: str | None = None


class Order(Event, frozen=True, gc=False):
    """The state of one order of an account, as last pushed by the exchange."""

    order_id: str
    symbol: str
    status: OrderStatus
    side: Side | None = None
    type: str | None = None
    price: Decimal | None = None
    quantity: Decimal | None = None
    executed_quantity: Decimal | None = None
    average_price: Decimal | None = None
    client_order_id: str | None = None
    created_at: int | None = None
    updated_at: int | None = None
    account: str | None = None


MarketEvent = Ticker | OrderBook | Trade | Candle
AccountEvent = BalanceUpdate | Order
FeedEvent = MarketEvent | AccountEvent
