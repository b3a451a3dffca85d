"""Simulated accounts: balances per user and the life cycle of their orders."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal
from typing import Any

from alerts.simulator.market import ZERO, dec

ACTIVE = frozenset({"NEW", "PARTIALLY_FILLED"})
SIDES = frozenset({"BUY", "SELL"})
ORDER_TYPES = frozenset({"LIMIT", "MARKET"})
QUANTITY_STEP = Decimal("0.000001")
# What a quote currency settles in: amounts paid, received and locked are whole cents, as an
# exchange books them (the raw product of a price and a quantity has a dozen decimals).
QUOTE_STEP = Decimal("0.01")
AVERAGE_STEP = Decimal("1e-12")

Payload = dict[str, Any]


@dataclass(slots=True)
class Balance:
    """Funds of one user in one currency."""

    available: Decimal
    locked: Decimal = ZERO


@dataclass(slots=True)
class Order:
    """One order and the funds it still holds locked."""

    order_id: str
    client_order_id: str
    user: int
    symbol: str
    side: str
    type: str
    price: Decimal
    quantity: Decimal
    created_at: int
    updated_at: int
    status: str = "NEW"
    executed: Decimal = ZERO
    executed_quote: Decimal = ZERO
    locked_left: Decimal = ZERO

    @property
    def base(self) -> str:
        """Currency bought or sold."""
        return self.symbol.split("-", 1)[0]

    @property
    def quote(self) -> str:
        """Currency paid or received."""
        return self.symbol.split("-", 1)[1]

    @property
    def locked_currency(self) -> str:
        """Currency the order locks while active."""
        return self.quote if self.side == "BUY" else self.base

    def payload(self) -> Payload:
        """One element of the `activeOrders` push data."""
        average = ZERO
        if self.executed:
            average = (self.executed_quote / self.executed).quantize(AVERAGE_STEP).normalize()
        return {
            "orderId": self.order_id,
            "clientOrderId": self.client_order_id,
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "status": self.status,
            "price": dec(self.price),
            "quantity": dec(self.quantity),
            "executedQuantity": dec(self.executed),
            "averagePrice": dec(average),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class OrderChange:
    """An order after a change, and the currencies whose balances moved."""

    order: Order
    currencies: frozenset[str]


class Accounts:
    """Balances and orders of every simulated user."""

    def __init__(self, initial_balances: Mapping[str, Decimal]) -> None:
        self.initial_balances = dict(initial_balances)
        self.orders: dict[str, Order] = {}
        self._balances: dict[int, dict[str, Balance]] = {}
        self._next_id = 0
        # The one background order per user that random_step drives.
        self._auto_orders: dict[int, str] = {}

    def balances(self, user: int) -> dict[str, Balance]:
        """The user's balances, created from the initial set on first use."""
        found = self._balances.get(user)
        if found is None:
            found = {cur: Balance(amount) for cur, amount in self.initial_balances.items()}
            self._balances[user] = found
        return found

    def balances_payload(self, user: int, currencies: Iterable[str] | None = None) -> list[Payload]:
        """The `balances` push data: every currency, or only `currencies`."""
        balances = self.balances(user)
        names = sorted(balances if currencies is None else set(currencies) & balances.keys())
        return [
            {
                "currency": name,
                "available": dec(balances[name].available),
                "locked": dec(balances[name].locked),
            }
            for name in names
        ]

    def set_balance(self, user: int, currency: str, available: Decimal, locked: Decimal) -> None:
        """Overwrite one balance."""
        self.balances(user)[currency] = Balance(available, locked)

    def active_orders(self, user: int, symbol: str | None = None) -> list[Order]:
        """The user's orders that are still active, oldest first."""
        return [
            o
            for o in self.orders.values()
            if o.user == user and o.status in ACTIVE and (symbol is None or o.symbol == symbol)
        ]

    def place(
        self,
        user: int,
        symbol: str,
        side: str,
        price: Decimal,
        quantity: Decimal,
        type_: str,
        now: int,
    ) -> OrderChange:
        """Create an order and lock what it may spend (at most what is available)."""
        if side not in SIDES or type_ not in ORDER_TYPES:
            raise ValueError(f"bad side or type: {side!r}, {type_!r}")
        if quantity <= ZERO or price < ZERO:
            raise ValueError("quantity must be positive and price not negative")
        self._next_id += 1
        order = Order(
            order_id=str(self._next_id),
            client_order_id=f"sim-{self._next_id}",
            user=user,
            symbol=symbol,
            side=side,
            type=type_,
            price=price,
            quantity=quantity,
            created_at=now,
            updated_at=now,
        )
        balance = self._balance(user, order.locked_currency)
        needed = _quote(price * quantity, ROUND_UP) if side == "BUY" else quantity
        order.locked_left = min(needed, max(balance.available, ZERO))
        balance.available -= order.locked_left
        balance.locked += order.locked_left
        self.orders[order.order_id] = order
        return OrderChange(order, frozenset({order.locked_currency}))

    def fill(
        self, order_id: str, quantity: Decimal | None, fill_price: Decimal, now: int
    ) -> OrderChange:
        """Execute part (or the rest) of an active order at `fill_price`."""
        order = self._active(order_id)
        remaining = order.quantity - order.executed
        amount = remaining if quantity is None else min(quantity, remaining)
        if amount <= ZERO:
            raise ValueError("fill quantity must be positive")
        base, quote = self._balance(order.user, order.base), self._balance(order.user, order.quote)
        cost = _quote(fill_price * amount, ROUND_HALF_EVEN)
        if order.side == "BUY":
            release = min(order.locked_left, _quote(order.price * amount, ROUND_UP))
            quote.locked -= release
            quote.available += release - cost
            base.available += amount
        else:
            release = min(order.locked_left, amount)
            base.locked -= release
            quote.available += cost
        order.locked_left -= release
        order.executed += amount
        order.executed_quote += cost
        order.updated_at = now
        order.status = "FILLED" if order.executed >= order.quantity else "PARTIALLY_FILLED"
        if order.status == "FILLED":
            self._unlock(order)
        return OrderChange(order, frozenset({order.base, order.quote}))

    def cancel(self, order_id: str, now: int) -> OrderChange:
        """Cancel an active order and release what it still locks."""
        order = self._active(order_id)
        order.status = "CANCELED"
        order.updated_at = now
        self._unlock(order)
        return OrderChange(order, frozenset({order.locked_currency}))

    def random_step(
        self, user: int, rng: random.Random, prices: Mapping[str, Decimal], now: int
    ) -> OrderChange:
        """Advance the user's background order: NEW -> PARTIALLY_FILLED -> FILLED, or CANCELED."""
        order_id = self._auto_orders.get(user)
        order = self.orders.get(order_id) if order_id is not None else None
        if order is None or order.status not in ACTIVE:
            symbol = rng.choice(sorted(prices))
            price = prices[symbol]
            notional = Decimal(rng.randint(10, 100))
            quantity = max((notional / price).quantize(QUANTITY_STEP, ROUND_UP), QUANTITY_STEP)
            side = rng.choice(("BUY", "SELL"))
            base = symbol.split("-", 1)[0]
            if side == "SELL" and self._balance(user, base).available < quantity:
                side = "BUY"  # a background order only sells what the user holds
            change = self.place(user, symbol, side, price, quantity, "LIMIT", now)
            self._auto_orders[user] = change.order.order_id
            return change
        if order.status == "NEW":
            if rng.random() < 0.3:
                return self.cancel(order.order_id, now)
            half = (order.quantity / 2).quantize(QUANTITY_STEP, ROUND_DOWN)
            if half > ZERO:
                return self.fill(order.order_id, half, order.price, now)
        return self.fill(order.order_id, None, order.price, now)

    def _active(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise KeyError(f"unknown order {order_id!r}")
        if order.status not in ACTIVE:
            raise ValueError(f"order {order_id} is {order.status}, no longer active")
        return order

    def _balance(self, user: int, currency: str) -> Balance:
        return self.balances(user).setdefault(currency, Balance(ZERO))

    def _unlock(self, order: Order) -> None:
        balance = self._balance(order.user, order.locked_currency)
        balance.locked -= order.locked_left
        balance.available += order.locked_left
        order.locked_left = ZERO


def _quote(amount: Decimal, rounding: str) -> Decimal:
    return amount.quantize(QUOTE_STEP, rounding=rounding)
