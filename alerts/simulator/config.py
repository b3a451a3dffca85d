"""Configuration and fixed parameters of the exchange simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

#: Length of every interval the protocol names; "1month" is known but too big for any channel.
INTERVAL_MS: dict[str, int] = {
    "1min": 60_000,
    "5min": 5 * 60_000,
    "15min": 15 * 60_000,
    "30min": 30 * 60_000,
    "1hour": 3_600_000,
    "4hour": 4 * 3_600_000,
    "1day": 86_400_000,
    "1week": 7 * 86_400_000,
    "1month": 30 * 86_400_000,
}
MAX_INTERVAL_MS = INTERVAL_MS["1week"]
DEFAULT_INTERVAL = "1day"
MAX_ORDERBOOK_DEPTH = 100
MAX_FRAME_BYTES = 64 * 1024

DEFAULT_SYMBOLS: tuple[str, ...] = ("BTC-USDT", "ETH-USDT", "TON-USDT", "NOT-USDT", "DOGS-USDT")

#: Starting prices of well-known symbols; any other symbol gets a seeded random price.
DEFAULT_PRICES: dict[str, Decimal] = {
    "BTC-USDT": Decimal("70000"),
    "ETH-USDT": Decimal("3500"),
    "TON-USDT": Decimal("5.5"),
    "NOT-USDT": Decimal("0.008"),
    "DOGS-USDT": Decimal("0.0005"),
    "USDT-TON": Decimal("0.18"),
}

DEFAULT_BALANCES: dict[str, Decimal] = {
    "USDT": Decimal("10000"),
    "TON": Decimal("500"),
    "BTC": Decimal("0.25"),
}


def generated_symbols(count: int, quote: str = "USDT") -> tuple[str, ...]:
    """Return `count` synthetic symbols such as SYM0-USDT, for load tests."""
    return tuple(f"SYM{i}-{quote}" for i in range(count))


@dataclass
class SimulatorConfig:
    """Everything that shapes a simulator run: market, accounts and faults."""

    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    tick_interval: float = 0.5
    seed: int | None = None
    tokens: dict[str, int] = field(default_factory=lambda: {"demo-token": 1})
    blocked_tokens: frozenset[str] = frozenset()
    idle_timeout: float = 60.0
    scripts: dict[str, list[Decimal]] = field(default_factory=dict)
    suspended_symbols: frozenset[str] = frozenset()
    order_activity_interval: float | None = None
    malformed_rate: float = 0.0
    orderbook_depth: int = 20
    initial_prices: dict[str, Decimal] = field(default_factory=dict)
    initial_balances: dict[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_BALANCES))
    #: Standard deviation of the relative price move per tick.
    volatility: float = 0.001
    max_frame_bytes: int = MAX_FRAME_BYTES

    def __post_init__(self) -> None:
        if self.tick_interval < 0:
            raise ValueError("tick_interval must not be negative")
        if self.idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        if not 0.0 <= self.malformed_rate <= 1.0:
            raise ValueError("malformed_rate must be within [0, 1]")
        if not 1 <= self.orderbook_depth <= MAX_ORDERBOOK_DEPTH:
            raise ValueError(f"orderbook_depth must be within [1, {MAX_ORDERBOOK_DEPTH}]")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be unique")
        unknown = set(self.scripts) - set(self.symbols)
        if unknown:
            raise ValueError(f"scripts name unknown symbols: {sorted(unknown)}")
        if any(p <= 0 for path in self.scripts.values() for p in path):
            raise ValueError("scripted prices must be positive")
