"""Order and balance rules: an account's pushes against the rules on that account, with no
I/O (part of the `Evaluator`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal

from alerts.domain.events import BalanceUpdate, Order
from alerts.domain.hits import Hit
from alerts.domain.rules import RuleKind
from alerts.domain.values import format_decimal as fmt
from alerts.engine.armed import Armed

_SEEN_ORDERS = 50_000

Skip = Callable[[Sequence[Armed], Exception], None]
"""Told of the rules whose evaluation raised (they miss this push; the others do not)."""


def _never(rules: Sequence[Armed], exc: Exception) -> None:
    raise exc


def _account(event: Order | BalanceUpdate) -> int | None:
    return int(event.account) if event.account and event.account.isdigit() else None


class AccountRules:
    """The armed order and balance rules by account, the balances last seen, and the order
    statuses already reported."""

    def __init__(self) -> None:
        self.by_account: dict[int, list[Armed]] = {}
        self.balances: dict[int, dict[str, Decimal]] = {}
        self._seen_orders: OrderedDict[tuple[int, str, str], None] = OrderedDict()

    def add(self, rule: Armed) -> None:
        """Arm an order or balance rule."""
        assert rule.account is not None
        self.by_account.setdefault(rule.account, []).append(rule)

    def remove(self, rule: Armed) -> None:
        """Disarm an order or balance rule."""
        rules = self.by_account.get(rule.account or 0, [])
        if rule in rules:
            rules.remove(rule)

    def order(self, event: Order, now: datetime, skip: Skip = _never) -> list[Hit]:
        """Hits of an order reaching a status (each status of an order once)."""
        account = _account(event)
        if account is None:
            return []
        seen = (account, event.order_id, event.status.value)
        if seen in self._seen_orders:
            return []  # the same status pushed again
        self._seen_orders[seen] = None
        if len(self._seen_orders) > _SEEN_ORDERS:
            self._seen_orders.popitem(last=False)
        t, hits = now.timestamp(), []
        side = event.side.value if event.side is not None else None
        for rule in list(self.by_account.get(account, ())):
            if rule.kind is not RuleKind.ORDER or event.status.value not in rule.extra:
                continue
            if (rule.symbol and rule.symbol != event.symbol) or (rule.mode and rule.mode != side):
                continue
            if not rule.may_fire(t):
                continue
            try:
                hits.append(_order_hit(rule, event, account, side, now))
            except Exception as exc:  # noqa: BLE001  (this rule's failure only)
                skip([rule], exc)
        return hits

    def balance(self, event: BalanceUpdate, now: datetime, skip: Skip = _never) -> list[Hit]:
        """Hits of an account's balances changing, and the balances remembered."""
        account = _account(event)
        if account is None:
            return []
        known = self.balances.setdefault(account, {})
        rules = [r for r in self.by_account.get(account, ()) if r.kind is RuleKind.BALANCE]
        t, hits = now.timestamp(), []
        for balance in event.balances:
            before, after = known.get(balance.currency), balance.total
            known[balance.currency] = after
            if before is None or before == after:
                continue
            for rule in rules:
                if rule.extra and rule.extra != balance.currency:
                    continue
                try:
                    if not (_balance_fires(rule, before, after) and rule.may_fire(t)):
                        continue
                    values = {
                        "currency": balance.currency,
                        "before": fmt(before),
                        "after": fmt(after),
                        "change": fmt(after - before),
                        "amount": fmt(rule.a) if rule.a is not None else "",
                        "account": str(account),
                    }
                    hits.append(rule.fire(now, values))
                except Exception as exc:  # noqa: BLE001  (this rule's failure only)
                    skip([rule], exc)
        return hits


def _order_hit(rule: Armed, event: Order, account: int, side: str | None, now: datetime) -> Hit:
    values = {
        "symbol": event.symbol,
        "order_id": event.order_id,
        "status": event.status.value,
        "side": side or "",
        "type": event.type or "",
        "price": fmt(event.price) if event.price is not None else "",
        "quantity": fmt(event.quantity) if event.quantity is not None else "",
        "executed": fmt(event.executed_quantity) if event.executed_quantity else "0",
        "average_price": fmt(event.average_price) if event.average_price else "",
        "account": str(account),
    }
    return rule.fire(now, values, dedup=f"{event.order_id}:{event.status.value}")


def _balance_fires(rule: Armed, before: Decimal, after: Decimal) -> bool:
    amount = rule.a
    if rule.mode == "below":
        return amount is not None and before >= amount > after
    if rule.mode == "above":
        return amount is not None and before <= amount < after
    return amount is None or abs(after - before) >= amount
