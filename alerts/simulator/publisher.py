"""Turns market and account changes into pushes for whoever is subscribed."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from alerts.simulator.accounts import Accounts, OrderChange
from alerts.simulator.hub import ALL_SYMBOLS, Connection, Hub
from alerts.simulator.market import Candle, Market, Payload, SymbolState, dec
from alerts.simulator.protocol import SubKey, orderbook_depth, push


class Publisher:
    """Builds each payload only when a route has subscribers, and encodes it once per route."""

    def __init__(self, market: Market, accounts: Accounts, hub: Hub, default_depth: int) -> None:
        self._market = market
        self._accounts = accounts
        self._hub = hub
        self._depth = default_depth

    def tick(self, now: int) -> None:
        """Advance every symbol one step and push what changed."""
        tickers_routes = self._hub.routes_for(ALL_SYMBOLS)
        tickers: list[Payload] = []
        for st in self._market.states.values():
            closed = self._market.advance(st, now)
            ticker = self.symbol_changed(st, closed, now)
            if tickers_routes:
                tickers.append(ticker or self._market.ticker(st, now))
        if tickers_routes:
            self._publish_all(tickers_routes, tickers)

    def price_set(self, st: SymbolState, closed: list[Candle], now: int) -> None:
        """Push the consequences of a price set from outside the tick loop."""
        self.symbol_changed(st, closed, now, with_trades=False)
        tickers_routes = self._hub.routes_for(ALL_SYMBOLS)
        if tickers_routes:
            tickers = [self._market.ticker(s, now) for s in self._market.states.values()]
            self._publish_all(tickers_routes, tickers)

    def symbol_changed(
        self, st: SymbolState, closed: list[Candle], now: int, *, with_trades: bool = True
    ) -> Payload | None:
        """Push one symbol's channels; return its ticker data if it was built."""
        for candle in closed:
            self.candle_closed(st.symbol, candle)
        routes = self._hub.routes_for(st.symbol)
        if not routes:
            return None
        ticker: Payload | None = None
        for route in tuple(routes):
            data: object
            channel = route[0]
            if channel == "ticker":
                if ticker is None:
                    ticker = self._market.ticker(st, now)
                data = ticker
            elif channel == "orderbook":
                data = self._market.orderbook(st, orderbook_depth(route, self._depth), now)
            elif channel == "trades":
                if not with_trades:
                    continue
                data = self._market.trades(st, now)
            else:
                current = st.candles.get(route[2])
                if current is None:
                    continue
                data = current.payload(st.symbol, closed=False)
            self._hub.publish(route, push(route, data))
        return ticker

    def candle_closed(self, symbol: str, candle: Candle) -> None:
        """Push a final candle."""
        route = ("candles", symbol, candle.interval)
        if self._hub.has(route):
            self._hub.publish(route, push(route, candle.payload(symbol, closed=True)))

    def trade(self, symbol: str, price: Decimal, quantity: Decimal, side: str, now: int) -> None:
        """Push one given trade."""
        route = ("trades", symbol)
        if self._hub.has(route):
            data = [self._market.trade(symbol, price, quantity, side, now)]
            self._hub.publish(route, push(route, data))

    def orderbook(
        self,
        symbol: str,
        bids: list[tuple[Decimal, Decimal]],
        asks: list[tuple[Decimal, Decimal]],
        now: int,
    ) -> None:
        """Push a given book to every orderbook route of the symbol, cut to its depth."""
        for route in tuple(self._hub.routes_for(symbol) or ()):
            if route[0] != "orderbook":
                continue
            depth = orderbook_depth(route, self._depth)
            data = {
                "symbol": symbol,
                "bids": [[dec(p), dec(q)] for p, q in bids[:depth]],
                "asks": [[dec(p), dec(q)] for p, q in asks[:depth]],
                "timestamp": now,
            }
            self._hub.publish(route, push(route, data))

    def balances_changed(self, user: int, currencies: Iterable[str]) -> None:
        """Push the changed currencies to the user's balances subscribers."""
        route = (f"user:{user}", "balances")
        if self._hub.has(route):
            data = self._accounts.balances_payload(user, currencies)
            self._hub.publish(route, push(route[1:], data))

    def order_changed(self, change: OrderChange) -> None:
        """Push an order's new state, then the balances it moved."""
        order = change.order
        user = f"user:{order.user}"
        frame_data = [order.payload()]
        for route in ((user, "activeOrders", order.symbol), (user, "activeOrders")):
            if self._hub.has(route):
                self._hub.publish(route, push(route[1:], frame_data))
        self.balances_changed(order.user, change.currencies)

    def snapshot(self, conn: Connection, key: SubKey, now: int) -> None:
        """Send a new subscriber the current state of what it subscribed to."""
        channel = key[0]
        data: object
        if channel == "balances":
            assert conn.user is not None
            data = self._accounts.balances_payload(conn.user)
        elif channel == "activeOrders":
            assert conn.user is not None
            orders = self._accounts.active_orders(conn.user, key[1] if len(key) > 1 else None)
            if not orders:
                return
            data = [order.payload() for order in orders]
        elif channel == "tickers":
            data = [self._market.ticker(st, now) for st in self._market.states.values()]
        elif channel == "trades":
            return
        else:
            st = self._market.state(key[1])
            if channel == "ticker":
                data = self._market.ticker(st, now)
            elif channel == "orderbook":
                data = self._market.orderbook(st, orderbook_depth(key, self._depth), now)
            else:
                data = self._market.ensure_candle(st, key[2], now).payload(st.symbol, closed=False)
        self._hub.deliver(conn, conn.route(key), push(key, data))

    def _publish_all(self, routes: Iterable[SubKey], tickers: list[Payload]) -> None:
        for route in tuple(routes):
            self._hub.publish(route, push(route, tickers))
