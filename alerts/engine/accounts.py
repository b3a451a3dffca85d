"""Order and balance rules: an account's pushes against the rules on that account, with no
I/O (part of the `Evaluator`).

Every account event is reported: each status an order reaches once (a partial fill each time
more of the order is executed, with what was executed since the last report), each balance
change. A rule's cooldown, where its owner set one, counts per order (and per currency for
balances), so it never swallows another order. What was reported, the balances last seen and
how far the account's history has been followed (`since`) form the account's state, which
the recorder persists with the hits it caused (`snapshot`) and a restart restores
(`restore`): nothing reported is reported again, and the order history from `since` on
(`alerts.engine.catchup`) tells what happened while the service was away.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from alerts.domain.events import BalanceUpdate, Order, OrderStatus
from alerts.domain.hits import Hit
from alerts.domain.rules import RuleKind
from alerts.domain.values import format_decimal as fmt
from alerts.engine.armed import Armed

ORDERS_KEPT = 1000  # per account: the orders whose reported state is remembered
_FIRED_KEPT = 100_000  # (rule, order or currency) pairs whose cooldown is tracked
# While connected and caught up, the history is followed up to a minute ago: what the
# exchange dates a little late is still looked at after a gap.
LIVE_MARGIN_MS = 60_000
_ZERO = Decimal(0)

Skip = Callable[[Sequence[Armed], Exception], None]
"""Told of the rules whose evaluation raised (they miss this push; the others do not)."""


def _never(rules: Sequence[Armed], exc: Exception) -> None:
    raise exc


def _account(event: Order | BalanceUpdate) -> int | None:
    return int(event.account) if event.account and event.account.isdigit() else None


class _Reported:
    """What was reported of one order: the statuses, and how much was executed."""

    __slots__ = ("executed", "statuses")

    def __init__(self, statuses: set[str], executed: Decimal) -> None:
        self.statuses = statuses
        self.executed = executed


class AccountRules:
    """The armed order and balance rules by account, and each account's state."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.by_account: dict[int, list[Armed]] = {}
        self.balances: dict[int, dict[str, Decimal]] = {}
        self._orders: dict[int, OrderedDict[str, _Reported]] = {}
        self._since: dict[int, int] = {}  # account -> newest update seen (ms)
        self._live: dict[int, int] = {}  # account -> caught up at (ms), while connected
        self._fired: OrderedDict[tuple[int, str], float] = OrderedDict()
        self._clock = clock

    def add(self, rule: Armed) -> None:
        """Arm an order or balance rule."""
        assert rule.account is not None
        self.by_account.setdefault(rule.account, []).append(rule)

    def remove(self, rule: Armed) -> None:
        """Disarm an order or balance rule."""
        rules = self.by_account.get(rule.account or 0, [])
        if rule in rules:
            rules.remove(rule)

    # --- the account's state ----------------------------------------------------------

    def since(self, account: int) -> int | None:
        """How far (Unix ms) the account's order history has been followed; None for an
        account never seen (nothing can have been missed)."""
        newest = self._since.get(account)
        live = self._live.get(account)
        if live is not None:
            now = int(self._clock() * 1000) - LIVE_MARGIN_MS
            newest = max(newest or now, now)
        return newest

    def follow(self, account: int) -> bool:
        """The service starts following the account (its connection is being opened): a gap
        from now on, even before its first connection is up, is read from the history. True
        for an account seen for the first time (no state restored)."""
        if self.since(account) is not None:
            return False
        self._since[account] = int(self._clock() * 1000)
        return True

    def live(self, account: int) -> None:
        """The account's connection is up and its history followed: `since` moves on."""
        self._live[account] = int(self._clock() * 1000)
        self._since[account] = self.since(account) or 0

    def lost(self, account: int) -> None:
        """The account's connection is down: `since` stays where it was."""
        since = self.since(account)
        self._live.pop(account, None)
        if since is not None:
            self._since[account] = since

    def snapshot(self, account: int) -> dict[str, Any]:
        """The account's state as JSON, for the recorder to persist."""
        orders = self._orders.get(account, OrderedDict())
        return {
            "balances": {k: fmt(v) for k, v in self.balances.get(account, {}).items()},
            "orders": {
                order_id: [sorted(r.statuses), fmt(r.executed)] for order_id, r in orders.items()
            },
            "since": self.since(account),
        }

    def restore(self, account: int, state: Mapping[str, Any]) -> None:
        """Load what `snapshot` persisted (after a restart)."""
        self.balances[account] = {k: Decimal(v) for k, v in state.get("balances", {}).items()}
        orders: OrderedDict[str, _Reported] = OrderedDict()
        for order_id, (statuses, executed) in (state.get("orders") or {}).items():
            orders[order_id] = _Reported(set(statuses), Decimal(executed))
        self._orders[account] = orders
        since = state.get("since")
        if isinstance(since, int):
            self._since[account] = since

    # --- orders -------------------------------------------------------------------------

    def order(
        self, event: Order, now: datetime, skip: Skip = _never, *, late: str | None = None
    ) -> list[Hit]:
        """Hits of an order reaching a status: each status once, a partial fill each time
        more is executed. `late` says why it is reported only now (from the history)."""
        account = _account(event)
        if account is None:
            return []
        if event.updated_at is not None:
            self._since[account] = max(self._since.get(account, 0), event.updated_at)
        orders = self._orders.setdefault(account, OrderedDict())
        reported = orders.get(event.order_id)
        status, executed = event.status.value, event.executed_quantity or _ZERO
        before = reported.executed if reported is not None else _ZERO
        more = status == OrderStatus.PARTIALLY_FILLED and executed > before
        if reported is not None and status in reported.statuses and not more:
            return []  # the same status (and fill) pushed again
        if reported is None:
            reported = orders[event.order_id] = _Reported(set(), _ZERO)
            if len(orders) > ORDERS_KEPT:
                orders.popitem(last=False)
        else:
            orders.move_to_end(event.order_id)
        reported.statuses.add(status)
        if executed > reported.executed:
            reported.executed = executed
        key = f"{event.order_id}:{status}"
        if status == OrderStatus.PARTIALLY_FILLED:
            key += f":{fmt(executed)}"
        t, hits = now.timestamp(), []
        side = event.side.value if event.side is not None else None
        for rule in list(self.by_account.get(account, ())):
            if rule.kind is not RuleKind.ORDER or status not in rule.extra:
                continue
            if (rule.symbol and rule.symbol != event.symbol) or (rule.mode and rule.mode != side):
                continue
            if not self._may_fire(rule, event.order_id, t):
                continue
            try:
                values = _order_values(event, account, side, executed - before)
                if late is not None:
                    values["late"] = late
                    values["at"] = _clock_time(event.updated_at)
                hits.append(rule.fire(now, values, after_gap=late is not None, dedup=key))
            except Exception as exc:  # noqa: BLE001  (this rule's failure only)
                skip([rule], exc)
        return hits

    # --- balances -----------------------------------------------------------------------

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
                    if not _balance_fires(rule, before, after):
                        continue
                    if not self._may_fire(rule, balance.currency, t):
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

    def _may_fire(self, rule: Armed, key: str, now: float) -> bool:
        """Open (not expired or snoozed), and out of its cooldown for this order or currency
        (an account rule's cooldown never holds back another order or currency)."""
        if not rule.open_at(now):
            return False
        if not rule.every or not rule.cooldown:
            return True
        fired = self._fired
        last = fired.get((rule.id, key))
        if last is not None and now < last + rule.cooldown:
            return False
        fired[(rule.id, key)] = now
        fired.move_to_end((rule.id, key))
        if len(fired) > _FIRED_KEPT:
            fired.popitem(last=False)
        return True


def _order_values(event: Order, account: int, side: str | None, filled: Decimal) -> dict[str, str]:
    return {
        "symbol": event.symbol,
        "order_id": event.order_id,
        "status": event.status.value,
        "side": side or "",
        "type": event.type or "",
        "price": fmt(event.price) if event.price is not None else "",
        "quantity": fmt(event.quantity) if event.quantity is not None else "",
        "executed": fmt(event.executed_quantity) if event.executed_quantity else "0",
        "filled": fmt(filled.normalize()) if filled > 0 else "0",
        "average_price": fmt(event.average_price) if event.average_price else "",
        "account": str(account),
    }


def _clock_time(millis: int | None) -> str:
    if millis is None:
        return ""
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%H:%M UTC")


def _balance_fires(rule: Armed, before: Decimal, after: Decimal) -> bool:
    amount = rule.a
    if rule.mode == "below":
        return amount is not None and before >= amount > after
    if rule.mode == "above":
        return amount is not None and before <= amount < after
    return amount is None or abs(after - before) >= amount
