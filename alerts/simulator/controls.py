"""What a test or demo does to a running simulator: move the market, change accounts and
inject faults; each change is pushed to the subscribers it concerns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from decimal import Decimal

from alerts.simulator.accounts import Accounts
from alerts.simulator.hub import Faults, Hub
from alerts.simulator.market import ZERO, Market, now_ms
from alerts.simulator.publisher import Publisher

logger = logging.getLogger("alerts.simulator")


class SimulatorControls:
    """The control surface of `Simulator`, which builds the parts declared here."""

    _market: Market
    _accounts: Accounts
    _publisher: Publisher
    _hub: Hub
    _faults: Faults

    # -- market control ----------------------------------------------------------------------

    def tick(self) -> None:
        """Advance the market by one tick now and push the results."""
        self._publisher.tick(now_ms())

    def price(self, symbol: str) -> Decimal:
        """Last price of a symbol."""
        return self._market.state(symbol).price

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Set the last price and push ticker, tickers, order book and candles."""
        st = self._market.state(symbol)
        now = now_ms()
        closed = self._market.apply(st, price, ZERO, now)
        self._publisher.price_set(st, closed, now)

    def script(self, symbol: str, prices: Iterable[Decimal]) -> None:
        """Queue prices that the next ticks use, one per tick, before the walk resumes."""
        queued = list(prices)
        if any(p <= ZERO for p in queued):
            raise ValueError("scripted prices must be positive")
        self._market.state(symbol).script.extend(queued)

    def push_trade(self, symbol: str, price: Decimal, quantity: Decimal, side: str = "BUY") -> None:
        """Push one trade to the symbol's trades subscribers."""
        self._market.state(symbol)
        self._publisher.trade(symbol, price, quantity, side, now_ms())

    def push_orderbook(
        self,
        symbol: str,
        bids: list[tuple[Decimal, Decimal]],
        asks: list[tuple[Decimal, Decimal]],
    ) -> None:
        """Push a given order book snapshot to the symbol's orderbook subscribers."""
        self._market.state(symbol)
        self._publisher.orderbook(symbol, bids, asks, now_ms())

    def close_candle(self, symbol: str, interval: str = "1min") -> None:
        """Push the open candle as closed and start the next one."""
        st = self._market.state(symbol)
        candle = self._market.close_candle(st, interval, now_ms())
        self._publisher.candle_closed(symbol, candle)

    # -- accounts ----------------------------------------------------------------------------

    def set_balance(
        self, user: int, currency: str, available: Decimal, locked: Decimal = ZERO
    ) -> None:
        """Overwrite one balance and push it to the user's balances subscribers."""
        self._accounts.set_balance(user, currency, available, locked)
        self._publisher.balances_changed(user, (currency,))

    def place_order(
        self,
        user: int,
        symbol: str,
        side: str,
        price: Decimal,
        quantity: Decimal,
        type: str = "LIMIT",
    ) -> str:
        """Create an order (status NEW) for a user; return its orderId."""
        self._market.state(symbol)
        change = self._accounts.place(user, symbol, side, price, quantity, type, now_ms())
        self._publisher.order_changed(change)
        return change.order.order_id

    def fill_order(self, order_id: str, quantity: Decimal | None = None) -> None:
        """Execute part of an order, or all that is left when `quantity` is None."""
        order = self._accounts.orders.get(order_id)
        if order is None:
            raise KeyError(f"unknown order {order_id!r}")
        # A market order executes at the market; a limit order at its own price.
        fill_price = order.price if order.type == "LIMIT" else self.price(order.symbol)
        change = self._accounts.fill(order_id, quantity, fill_price, now_ms())
        self._publisher.order_changed(change)

    def cancel_order(self, order_id: str) -> None:
        """Cancel an active order."""
        self._publisher.order_changed(self._accounts.cancel(order_id, now_ms()))

    # -- faults ------------------------------------------------------------------------------

    async def drop_connections(self) -> int:
        """Abruptly close every client connection; return how many there were."""
        conns = tuple(self._hub.connections)
        for conn in conns:
            self._hub.remove(conn)
            conn.abort()
        await asyncio.sleep(0)
        if conns:
            logger.info("dropped %d connections", len(conns))
        return len(conns)

    def stall(self, seconds: float) -> None:
        """Send nothing at all for `seconds`; requests are answered afterwards."""
        self._faults.stalled_until = asyncio.get_running_loop().time() + seconds

    def inject_malformed(self, count: int) -> None:
        """Replace the next `count` pushes of each open connection with malformed frames."""
        for conn in self._hub.connections:
            conn.malformed_pending += count

    def send_raw(self, frame: str) -> int:
        """Send `frame` as it is (a hostile or broken exchange's push, say) to every open
        connection; how many got it."""
        conns = tuple(self._hub.connections)
        for conn in conns:
            conn.enqueue(frame)
        return len(conns)

    def rate_limit_next(self, count: int) -> None:
        """Answer the next `count` requests (other than ping) with a rate-limit error."""
        self._faults.rate_limited += count
