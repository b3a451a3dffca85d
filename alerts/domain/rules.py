"""The eight rule kinds of the contract: what each watches, validated, with no I/O.

A *spec* is the kind-specific part of a rule (`kind` picks the fields). The API, the bot and
the engine all read rules through these classes, so a rule means the same thing everywhere.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from alerts.domain.events import OrderStatus, Side
from alerts.domain.values import Amount, Currency, Percent, Price, Symbol, format_decimal

CandleInterval = Literal["1min", "5min", "15min", "30min", "1hour", "4hour", "1day", "1week"]
MIN_WINDOW_SECONDS = 10
MAX_WINDOW_SECONDS = 7 * 24 * 3600
MAX_ID = 2**31 - 1
REARM = (
    "With trigger `every`: after firing, the rule fires again only once the price has gone "
    "back this many percent past the level (the edge it crossed, for a range)."
)


class RuleKind(StrEnum):
    """Every kind of rule a user can create."""

    PRICE_CROSS = "price_cross"
    PRICE_RANGE = "price_range"
    PERCENT_CHANGE = "percent_change"
    CANDLE_CLOSE = "candle_close"
    LARGE_TRADE = "large_trade"
    SPREAD = "spread"
    ORDER = "order"
    BALANCE = "balance"


class Direction(StrEnum):
    """Which way a price must move."""

    UP = "up"
    DOWN = "down"
    ANY = "any"


class PriceSource(StrEnum):
    """Which ticker price a rule watches."""

    LAST = "last"
    BID = "bid"
    ASK = "ask"


class RangeEdge(StrEnum):
    """Whether entering the range, leaving it, or both fire."""

    ENTER = "enter"
    EXIT = "exit"
    ANY = "any"


class CloseDirection(StrEnum):
    """Where a candle must close relative to the level."""

    ABOVE = "above"
    BELOW = "below"


class BalanceCondition(StrEnum):
    """What about a balance fires the rule."""

    CHANGE = "change"
    BELOW = "below"
    ABOVE = "above"


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def describe(self) -> str:
        """A short human name for the rule, used when the user gives none."""
        raise NotImplementedError


class _MarketSpec(_Spec):
    symbol: Symbol


class PriceCross(_MarketSpec):
    """The price moves across `level`: previous on one side, current on or past the other."""

    kind: Literal["price_cross"]
    level: Price
    direction: Direction = Direction.ANY
    source: PriceSource = PriceSource.LAST
    rearm_percent: Percent | None = Field(default=None, description=REARM)

    def describe(self) -> str:
        """E.g. "BTC-USDT crosses 70000 up"."""
        way = "" if self.direction is Direction.ANY else f" {self.direction.value}"
        return f"{self.symbol} crosses {format_decimal(self.level)}{way}"


class PriceRange(_MarketSpec):
    """The price enters or leaves the range [low, high]."""

    kind: Literal["price_range"]
    low: Price
    high: Price
    on: RangeEdge = RangeEdge.ANY
    source: PriceSource = PriceSource.LAST
    rearm_percent: Percent | None = Field(default=None, description=REARM)

    @model_validator(mode="after")
    def _ordered(self) -> PriceRange:
        if self.low >= self.high:
            raise ValueError("low must be below high")
        return self

    def describe(self) -> str:
        """E.g. "BTC-USDT enters 60000..70000"."""
        verb = {
            RangeEdge.ENTER: "enters",
            RangeEdge.EXIT: "leaves",
            RangeEdge.ANY: "enters or leaves",
        }
        low, high = format_decimal(self.low), format_decimal(self.high)
        return f"{self.symbol} {verb[self.on]} {low}..{high}"


class PercentChange(_MarketSpec):
    """The price moved by at least `percent` within the trailing window."""

    kind: Literal["percent_change"]
    percent: Percent
    window_seconds: int = Field(ge=MIN_WINDOW_SECONDS, le=MAX_WINDOW_SECONDS, examples=[3600])
    direction: Direction = Direction.ANY
    source: PriceSource = PriceSource.LAST

    def describe(self) -> str:
        """E.g. "BTC-USDT moves 5% in 3600s"."""
        return f"{self.symbol} moves {format_decimal(self.percent)}% in {self.window_seconds}s"


class CandleClose(_MarketSpec):
    """A closed candle of `interval` closes past `level`."""

    kind: Literal["candle_close"]
    interval: CandleInterval
    level: Price
    direction: CloseDirection

    def describe(self) -> str:
        """E.g. "BTC-USDT 1hour closes above 70000"."""
        level = format_decimal(self.level)
        return f"{self.symbol} {self.interval} closes {self.direction.value} {level}"


class LargeTrade(_MarketSpec):
    """A public trade at least `min_quantity` and/or `min_notional` big."""

    kind: Literal["large_trade"]
    min_quantity: Price | None = None
    min_notional: Price | None = None
    side: Side | None = None

    @model_validator(mode="after")
    def _some_size(self) -> LargeTrade:
        if self.min_quantity is None and self.min_notional is None:
            raise ValueError("give min_quantity, min_notional or both")
        return self

    def describe(self) -> str:
        """E.g. "BTC-USDT trade ≥ 10"."""
        sizes = [format_decimal(v) for v in (self.min_quantity, self.min_notional) if v]
        return f"{self.symbol} trade ≥ {' / '.join(sizes)}"


class Spread(_MarketSpec):
    """The best bid/ask spread widens past `percent` of the mid price."""

    kind: Literal["spread"]
    percent: Percent

    @field_validator("percent")
    @classmethod
    def _below_hundred(cls, value: Percent) -> Percent:
        if value >= 100:
            raise ValueError("a spread percentage must be below 100")
        return value

    def describe(self) -> str:
        """E.g. "BTC-USDT spread > 1%"."""
        return f"{self.symbol} spread > {format_decimal(self.percent)}%"


class OrderRule(_Spec):
    """An order of the account reaches one of `statuses`."""

    kind: Literal["order"]
    account_id: int = Field(gt=0, le=MAX_ID)
    statuses: list[OrderStatus] = Field(
        default_factory=lambda: [OrderStatus.FILLED], min_length=1, max_length=6
    )
    symbol: Symbol | None = None
    side: Side | None = None

    @field_validator("statuses")
    @classmethod
    def _distinct_statuses(cls, value: list[OrderStatus]) -> list[OrderStatus]:
        return list(dict.fromkeys(value))

    def describe(self) -> str:
        """E.g. "Orders FILLED"."""
        where = f" on {self.symbol}" if self.symbol else ""
        return f"Orders{where} {', '.join(s.value for s in self.statuses)}"


class BalanceRule(_Spec):
    """A balance changes by at least `amount`, or crosses below/above it."""

    kind: Literal["balance"]
    account_id: int = Field(gt=0, le=MAX_ID)
    currency: Currency | None = None
    condition: BalanceCondition = BalanceCondition.CHANGE
    amount: Amount | None = None

    @model_validator(mode="after")
    def _amount_when_needed(self) -> BalanceRule:
        if self.condition is not BalanceCondition.CHANGE and self.amount is None:
            raise ValueError(f"condition {self.condition.value!r} needs an amount")
        return self

    def describe(self) -> str:
        """E.g. "USDT balance below 100"."""
        what = f"{self.currency} balance" if self.currency else "Balance"
        if self.amount is None:
            return f"{what} changes"
        verb = "changes by" if self.condition is BalanceCondition.CHANGE else self.condition.value
        return f"{what} {verb} {format_decimal(self.amount)}"


RuleSpec = Annotated[
    PriceCross
    | PriceRange
    | PercentChange
    | CandleClose
    | LargeTrade
    | Spread
    | OrderRule
    | BalanceRule,
    Field(discriminator="kind"),
]
SPEC_TYPES: dict[RuleKind, type[_Spec]] = {
    RuleKind.PRICE_CROSS: PriceCross,
    RuleKind.PRICE_RANGE: PriceRange,
    RuleKind.PERCENT_CHANGE: PercentChange,
    RuleKind.CANDLE_CLOSE: CandleClose,
    RuleKind.LARGE_TRADE: LargeTrade,
    RuleKind.SPREAD: Spread,
    RuleKind.ORDER: OrderRule,
    RuleKind.BALANCE: BalanceRule,
}
ACCOUNT_KINDS = frozenset({RuleKind.ORDER, RuleKind.BALANCE})
spec_adapter: TypeAdapter[RuleSpec] = TypeAdapter(RuleSpec)
