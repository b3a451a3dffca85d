"""Simulated market: seeded random walk, scripted paths, and the payloads of public channels."""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from typing import Any

from alerts.simulator.config import DEFAULT_PRICES, INTERVAL_MS, SimulatorConfig

ZERO = Decimal(0)
HUNDRED = Decimal(100)
PERCENT_STEP = Decimal("0.01")
SPREAD_RATIO = Decimal("0.0002")
#: Ticks carry about six significant digits, like a real exchange's price filter.
TICK_DIGITS = 5
HISTORY = 2000  # closed candles kept per symbol and interval (for the REST API)

Payload = dict[str, Any]


def now_ms() -> int:
    """Wall-clock time in Unix milliseconds."""
    return time.time_ns() // 1_000_000


def dec(value: Decimal) -> str:
    """A decimal as a plain string (never exponent notation)."""
    text = str(value)  # much cheaper than format(); only tiny or huge values need "f"
    return text if "E" not in text else format(value, "f")


@dataclass(slots=True)
class Candle:
    """One open candle of one symbol and interval."""

    interval: str
    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO

    @classmethod
    def starting(cls, interval: str, open_time: int, price: Decimal) -> Candle:
        """A fresh candle whose window starts at `open_time`."""
        close_time = open_time + INTERVAL_MS[interval] - 1
        return cls(interval, open_time, close_time, price, price, price, price)

    def update(self, price: Decimal, quantity: Decimal) -> None:
        """Fold one price (and traded quantity) into the candle."""
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.volume += quantity

    def payload(self, symbol: str, *, closed: bool) -> Payload:
        """The `candles` push data."""
        return {
            "symbol": symbol,
            "interval": self.interval,
            "openTime": self.open_time,
            "closeTime": self.close_time,
            "open": dec(self.open),
            "high": dec(self.high),
            "low": dec(self.low),
            "close": dec(self.close),
            "volume": dec(self.volume),
            "closed": closed,
        }


@dataclass(slots=True)
class SymbolState:
    """Price, statistics and open candles of one symbol."""

    symbol: str
    tick: Decimal
    lot: Decimal
    price: Decimal
    #: The last price in ticks, so that the walk moves in integers.
    ticks: int
    open: Decimal
    high: Decimal
    low: Decimal
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    script: deque[Decimal] = field(default_factory=deque)
    candles: dict[str, Candle] = field(default_factory=dict)
    #: Per interval, the candles closed so far (the newest `HISTORY` of them), oldest first.
    history: dict[str, deque[Candle]] = field(default_factory=dict)

    def closed(self, candle: Candle) -> Candle:
        """Keep a candle that just closed in the history; return it."""
        kept = self.history.get(candle.interval)
        if kept is None:
            kept = self.history[candle.interval] = deque(maxlen=HISTORY)
        kept.append(candle)
        return candle

    def spread(self) -> Decimal:
        """Half the bid/ask spread around the last price."""
        half = (self.price * SPREAD_RATIO).quantize(self.tick, rounding=ROUND_UP)
        if half <= ZERO:
            half = self.tick
        if half >= self.price:
            half = self.price / 4
        return half


class Market:
    """All symbols of the simulated exchange and how their prices move."""

    def __init__(self, config: SimulatorConfig) -> None:
        seed = config.seed
        # Separate generators keep the price path independent of who subscribed to what.
        self._walk = random.Random(seed)
        self._noise = random.Random(None if seed is None else seed + 1)
        # A uniform step on [-w/2, w/2] has standard deviation w / sqrt(12).
        self._step_width = config.volatility * math.sqrt(12)
        self._trade_id = 0
        self.states: dict[str, SymbolState] = {}
        for symbol in config.symbols:
            price = config.initial_prices.get(symbol) or DEFAULT_PRICES.get(symbol)
            if price is None:
                price = _generated_price(seed, symbol)
            self.states[symbol] = _new_state(symbol, price)
        for symbol, prices in config.scripts.items():
            self.states[symbol].script.extend(prices)

    def state(self, symbol: str) -> SymbolState:
        """State of a configured symbol; KeyError for others."""
        try:
            return self.states[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}") from None

    def advance(self, st: SymbolState, now: int) -> list[Candle]:
        """Move one symbol by one tick; return the candles this closed."""
        # random() rather than gauss()/randint(): this runs for every symbol on every tick.
        quantity = st.lot * int(self._noise.random() * 1000 + 1)
        if st.script:
            return self.apply(st, st.script.popleft(), quantity, now)
        r = self._walk.random() - 0.5
        move = round(st.ticks * self._step_width * r)
        if move == 0:
            # Keep low-priced symbols moving: at least one tick either way.
            move = 1 if r >= 0 else -1
        ticks = max(st.ticks + move, 1)
        return self.apply(st, st.tick * ticks, quantity, now, ticks=ticks)

    def apply(
        self,
        st: SymbolState,
        price: Decimal,
        quantity: Decimal,
        now: int,
        *,
        ticks: int | None = None,
    ) -> list[Candle]:
        """Set the last price and fold it into statistics and candles."""
        if price <= ZERO:
            raise ValueError("price must be positive")
        st.price = price
        st.ticks = ticks if ticks is not None else max(int(price / st.tick), 1)
        if price > st.high:
            st.high = price
        elif price < st.low:
            st.low = price
        if quantity:
            st.volume += quantity
            st.quote_volume += quantity * price
        closed: list[Candle] = []
        for interval, candle in st.candles.items():
            if now > candle.close_time:
                closed.append(st.closed(candle))
                candle = Candle.starting(interval, _window_start(interval, now), candle.close)
                st.candles[interval] = candle
            candle.update(price, quantity)
        return closed

    def ensure_candle(self, st: SymbolState, interval: str, now: int) -> Candle:
        """The open candle of `interval`, started at the current window if not tracked yet."""
        candle = st.candles.get(interval)
        if candle is None:
            candle = Candle.starting(interval, _window_start(interval, now), st.price)
            st.candles[interval] = candle
        return candle

    def close_candle(self, st: SymbolState, interval: str, now: int) -> Candle:
        """Finish the open candle early; the next one starts at its close time."""
        candle = self.ensure_candle(st, interval, now)
        st.candles[interval] = Candle.starting(interval, candle.close_time + 1, st.price)
        return st.closed(candle)

    def ticker(self, st: SymbolState, now: int) -> Payload:
        """The `ticker` push data (also one element of `tickers`)."""
        change = st.price - st.open
        half = st.spread()
        return {
            "symbol": st.symbol,
            "lastPrice": dec(st.price),
            "openPrice": dec(st.open),
            "highPrice": dec(st.high),
            "lowPrice": dec(st.low),
            "volume": dec(st.volume),
            "quoteVolume": dec(st.quote_volume),
            "priceChange": dec(change),
            "priceChangePercent": dec((change * HUNDRED / st.open).quantize(PERCENT_STEP)),
            "bidPrice": dec(st.price - half),
            "askPrice": dec(st.price + half),
            "timestamp": now,
        }

    def orderbook(self, st: SymbolState, depth: int, now: int) -> Payload:
        """A full random snapshot of the top `depth` levels around the last price."""
        half = st.spread()
        step = max(half, st.tick)
        rand = self._noise.randint
        bids: list[list[str]] = []
        price = st.price - half
        while len(bids) < depth and price > ZERO:
            bids.append([dec(price), dec(rand(1, 500) * st.lot)])
            price -= step
        asks = [[dec(st.price + half + i * step), dec(rand(1, 500) * st.lot)] for i in range(depth)]
        return {"symbol": st.symbol, "bids": bids, "asks": asks, "timestamp": now}

    def trades(self, st: SymbolState, now: int) -> list[Payload]:
        """A few random trades close to the last price."""
        rand = self._noise.randint
        result = []
        for _ in range(rand(1, 3)):
            price = st.price + rand(-2, 2) * st.tick
            if price <= ZERO:
                price = st.price
            side = "BUY" if rand(0, 1) else "SELL"
            result.append(self.trade(st.symbol, price, rand(1, 200) * st.lot, side, now))
        return result

    def trade(self, symbol: str, price: Decimal, quantity: Decimal, side: str, now: int) -> Payload:
        """One element of the `trades` push data, with a fresh id."""
        self._trade_id += 1
        return {
            "id": self._trade_id,
            "symbol": symbol,
            "price": dec(price),
            "quantity": dec(quantity),
            "side": side,
            "timestamp": now,
        }


def _new_state(symbol: str, price: Decimal) -> SymbolState:
    tick = Decimal(1).scaleb(price.adjusted() - TICK_DIGITS)
    # A lot worth roughly a few quote units whatever the price.
    lot = Decimal(1).scaleb(min(0, -(price.adjusted() + 1)))
    price = max(price.quantize(tick), tick)
    ticks = int(price / tick)
    return SymbolState(symbol, tick, lot, price, ticks, price, price, price)


def _generated_price(seed: int | None, symbol: str) -> Decimal:
    # String seeds hash with SHA-512, so a symbol's price does not depend on PYTHONHASHSEED.
    rng = random.Random(None if seed is None else f"{seed}/{symbol}")
    return Decimal(f"{10 ** rng.uniform(-3, 4):.6g}")


def _window_start(interval: str, now: int) -> int:
    return now - now % INTERVAL_MS[interval]
