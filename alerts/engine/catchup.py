"""Fills missed while away: when an account's private connection comes up (at start, or
after a drop), the orders it closed since the account's history was last followed are read
from the REST API and reported, once (what was reported already is known to the account's
state), marked late: "while the service was stopped" or "while the connection was down".

Until that read succeeds, the account's `since` stays where it was, so a failed read (the
REST API down, a restart meanwhile) is retried and nothing in the gap is lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from alerts.domain.events import Order
from alerts.engine.accounts import AccountRules
from alerts.feed.backoff import Backoff
from alerts.feed.errors import AuthRejected, FeedError
from alerts.feed.rest import ExchangeRest

logger = logging.getLogger("alerts.engine")

WHILE_STOPPED = "while the service was stopped"
WHILE_DOWN = "while the connection was down"


class CatchUp:
    """Reads each account's missed orders after its connection comes up."""

    def __init__(
        self,
        rest: ExchangeRest | None,
        accounts: AccountRules,
        report: Callable[[Order, str], None],
        *,
        retry: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.rest = rest
        self.accounts = accounts
        self.report = report
        self.retry = retry or Backoff(initial=1.0, maximum=300.0, factor=2.0, jitter=0.2)
        self._rng = rng or random.Random()
        self._started: set[int] = set()  # accounts connected at least once since start
        self._fresh: set[int] = set()  # new accounts whose first connection is not up yet
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def follow(self, account: int) -> None:
        """The account's connection is being opened: follow its history from now on. A new
        account's gaps, even one before its first connection is up, are the connection's
        ("while the connection was down"); a restored account's first gap is the stop's."""
        if self.accounts.follow(account):
            self._fresh.add(account)

    def connected(self, account: int, token: str) -> None:
        """The account's connection is up (and subscribed): catch up from its `since`."""
        reason = WHILE_DOWN if account in self._started else WHILE_STOPPED
        self._started.add(account)
        self._cancel(account)
        fresh = account in self._fresh  # a new account's first connection: nothing missed
        self._fresh.discard(account)
        if fresh or self.accounts.since(account) is None or self.rest is None:
            # Nothing to read: followed from now on, at once (in a task, a drop before it
            # ran would cancel it and leave the account unfollowed, its next gap unread).
            self.accounts.live(account)
            return
        self._tasks[account] = asyncio.create_task(
            self._run(account, token, reason), name=f"catch up account {account}"
        )

    def disconnected(self, account: int) -> None:
        """The account's connection is down: its history is followed no further."""
        if account in self._fresh:  # down before its first connection was up: a gap
            self._fresh.discard(account)
            self._started.add(account)
        self._cancel(account)
        self.accounts.lost(account)

    async def close(self) -> None:
        """Stop every catch-up in progress."""
        for account in list(self._tasks):
            self._cancel(account)
        if self.rest is not None:
            await self.rest.close()

    def _cancel(self, account: int) -> None:
        task = self._tasks.pop(account, None)
        if task is not None:
            task.cancel()

    async def _run(self, account: int, token: str, reason: str) -> None:
        since, rest = self.accounts.since(account), self.rest
        if since is None or rest is None:
            return  # (never: `connected` starts no task for these)
        attempt = 0
        while True:
            try:
                orders = await rest.order_history(token, str(account), since)
                break
            except AuthRejected as exc:
                logger.warning("account %s: the REST API refused its token: %s", account, exc)
                return
            except (FeedError, OSError) as exc:
                delay = self.retry.delay(attempt, self._rng)
                attempt += 1
                logger.warning(
                    "account %s: cannot read its order history yet (%s); again in %.0f s",
                    account,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
        for order in orders:
            try:
                self.report(order, reason)
            except Exception:
                # A bug in evaluating or recording this one order: going on loses its alert
                # (logged with its id), where stopping would lose every order after it.
                logger.exception("account %s: order %s from the history", account, order.order_id)
        if orders:
            logger.info(
                "account %s: %d order(s) from the history, %s", account, len(orders), reason
            )
        self.accounts.live(account)
