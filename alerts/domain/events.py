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

from alerts.domain.values import bounded


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


def _decimal(text: str | None) -> Decimal | None:
    """`text` as a Decimal within what a number can be (see `bounded`; a change may be
    negative), or None when absent, not a number, or out of bounds."""
    if text is None or len(text) > 64:
        return None
    try:
        return bounded(Decimal(text), signed=True)
    except (ArithmeticError, ValueError):  # out of bounds too: the statistics are only shown
        return None


class DayStats(Event, frozen=True, gc=False):
    """A ticker's 24-hour statistics, kept as the exchange's decimal text.

    They are shown to people, never compared on the hot path, so each becomes a
    `Decimal` only when read (None when absent or not a number): building ten
    Decimals for every ticker push would cost as much as the rest of parsing.
    """

    open_text: str | None = None
    high_text: str | None = None
    low_text: str | None = None
    volume_text: str | None = None
    quote_volume_text: str | None = None
    change_text: str | None = None
    change_percent_text: str | None = None

    @property
    def open(self) -> Decimal | None:
        """Price 24 hours ago."""
        return _decimal(self.open_text)

    @property
    def high(self) -> Decimal | None:
        """Highest price in 24 hours."""
        return _decimal(self.high_text)

    @property
    def low(self) -> Decimal | None:
        """Lowest price in 24 hours."""
        return _decimal(self.low_text)

    @property
    def volume(self) -> Decimal | None:
        """Traded quantity in 24 hours, in the base currency."""
        return _decimal(self.volume_text)

    @property
    def quote_volume(self) -> Decimal | None:
        """Traded value in 24 hours, in the quote currency."""
        return _decimal(self.quote_volume_text)

    @property
    def change(self) -> Decimal | None:
        """Price change over 24 hours."""
        return _decimal(self.change_text)

    @property
    def change_percent(self) -> Decimal | None:
        """Price change over 24 hours, in percent."""
        return _decimal(self.change_percent_text)


class Ticker(Event, frozen=True, gc=False):
    """Latest price and best bid/ask of one symbol, with its 24-hour statistics."""

    symbol: str
    last: Decimal
    bid: Decimal | None = None
    ask: Decimal | None = None
    timestamp: int | None = None
    day: DayStats | None = None


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
