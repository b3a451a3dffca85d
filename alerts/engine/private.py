"""The engine's private connections: one per linked account that order or balance rules
need, authenticated with the account's decrypted token, subscribed to its balances and
orders, and closed when no rule needs it any more. A token the exchange refuses marks the
account rejected (its owner is told once) and leaves it alone until the token is replaced.
When a connection comes up, `CatchUp` reads what the account did meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import partial

from alerts.db.session import Database
from alerts.domain.events import FeedEvent
from alerts.engine import store
from alerts.engine.catchup import CatchUp
from alerts.feed import FeedClient, FeedConfig, Subscription
from alerts.feed.errors import AuthRejected
from alerts.feed.state import FeedState
from alerts.security import SecretBox, SecretsUnavailable, UndecryptableSecret

logger = logging.getLogger("alerts.engine")


class AccountConnections:
    """The open private connections, by account id."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        feed: FeedConfig,
        sink: Callable[[FeedEvent], None],
        catch_up: CatchUp,
        clock: Callable[[], datetime],
    ) -> None:
        self.db, self.box, self.feed, self.sink = db, box, feed, sink
        self.catch_up = catch_up
        self.clock = clock
        self.clients: dict[int, FeedClient] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._refused: dict[int, datetime] = {}

    def __contains__(self, account: object) -> bool:
        return account in self.clients

    def states(self) -> list[FeedState]:
        """Each connection's state."""
        return [client.state for client in self.clients.values()]

    async def sync(self, wanted: set[int]) -> None:
        """Open a connection for each account in `wanted` (unless its token was refused);
        close the others."""
        for account in set(self.clients) - wanted:
            await self._close(account)
        missing = wanted - set(self.clients)
        if not missing:
            return
        info = await asyncio.to_thread(store.accounts, self.db, missing)
        for account in missing:
            details = info.get(account)
            if details is None:
                continue
            if details.status == "rejected":
                self._refused.setdefault(account, details.updated_at)
                continue
            self._refused.pop(account, None)
            self._open(details)

    async def stop(self) -> None:
        """Close every connection."""
        for account in list(self.clients):
            await self._close(account)
        await self.catch_up.close()

    def _open(self, details: store.AccountInfo) -> None:
        try:
            token = self.box.open(details.token_sealed)
        except (SecretsUnavailable, UndecryptableSecret):
            logger.error(
                "account %s: its token cannot be decrypted (is ALERTS_SECRET_KEY the key "
                "it was stored with?)",
                details.id,
            )
            return
        config = replace(
            self.feed, name=f"account {details.id}", token=token, account=str(details.id)
        )
        client = FeedClient(
            config,
            self.sink,
            on_ready=partial(self.catch_up.connected, details.id, token),
            on_disconnect=partial(self.catch_up.disconnected, details.id),
        )
        self.clients[details.id] = client
        self.catch_up.follow(details.id)
        self._tasks[details.id] = asyncio.create_task(
            self._run(details.id, client), name=f"feed account {details.id}"
        )

    async def _run(self, account: int, client: FeedClient) -> None:
        await client.subscribe(Subscription.balances())
        await client.subscribe(Subscription.active_orders())
        try:
            await client.run()
        except AuthRejected as exc:
            logger.warning("account %s: the exchange refused its token: %s", account, exc)
            self.clients.pop(account, None)
            self._tasks.pop(account, None)
            self._refused[account] = self.clock()
            await asyncio.to_thread(
                store.reject_account, self.db, account, exc.message, self.clock()
            )

    async def _close(self, account: int) -> None:
        client = self.clients.pop(account, None)
        task = self._tasks.pop(account, None)
        if client is not None:
            await client.stop()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, AuthRejected):
                await task
