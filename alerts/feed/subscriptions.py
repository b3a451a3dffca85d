"""Subscription bookkeeping: what a client keeps across reconnects, what the current
connection has, and what the exchange refused."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection

from alerts.feed import protocol
from alerts.feed.errors import AlreadySubscribed, NotSubscribed, RequestRejected, SymbolUnavailable
from alerts.feed.protocol import Subscription
from alerts.feed.requester import Requester
from alerts.feed.state import FeedState

logger = logging.getLogger("alerts.feed")


class SubscriptionBook:
    """The subscriptions wanted on every connection, and those active on the current one."""

    def __init__(
        self,
        name: str,
        state: FeedState,
        requester: Requester,
        *,
        on_balances: Callable[[], None],
        on_refused: Callable[[Subscription, RequestRejected], None] | None = None,
        on_subscribed: Callable[[Subscription], None] | None = None,
    ) -> None:
        self.name = name
        self.state = state
        self._requester = requester
        self._on_balances = on_balances
        self._on_refused = on_refused
        self._on_subscribed = on_subscribed
        self.desired: dict[Subscription, None] = {}  # a dict, to restore in the order asked
        self.active: set[Subscription] = set()

    def want(self, sub: Subscription) -> bool:
        """Keep `sub` on every connection; False if it already was."""
        if sub in self.desired:
            return False
        self.desired[sub] = None
        return True

    def drop(self, sub: Subscription) -> None:
        """Stop wanting `sub`, and forget that it was ever refused."""
        self.desired.pop(sub, None)
        self.state.failed_subscriptions.pop(label(sub), None)

    def reset(self) -> None:
        """A connection began or ended: nothing is active on it."""
        self.active = set()

    async def restore(self, ws: ClientConnection) -> None:
        """Subscribe a new connection to everything wanted; a refusal drops only its own."""
        tried: set[Subscription] = set()
        # Loop: subscribe() calls made during the handshake add to the desired set.
        while pending := [s for s in self.desired if s not in self.active and s not in tried]:
            for sub in pending:
                tried.add(sub)
                try:
                    await self.subscribe_on(ws, sub)
                except RequestRejected as exc:
                    self.reject(sub, exc)

    async def subscribe_on(self, ws: ClientConnection, sub: Subscription) -> None:
        """Subscribe `sub` on `ws`, undoing it if it was dropped meanwhile."""
        if sub.channel == protocol.BALANCES:
            self._on_balances()  # the first balances push after this is the full set
        with contextlib.suppress(AlreadySubscribed):
            await self._requester.request(ws, protocol.SUBSCRIBE, sub.params())
        if sub not in self.desired:
            # Unsubscribed while the request was in flight: undo it on the exchange too.
            with contextlib.suppress(NotSubscribed):
                await self._requester.request(ws, protocol.UNSUBSCRIBE, sub.params())
            return
        self.active.add(sub)
        self.state.failed_subscriptions.pop(label(sub), None)
        if self._on_subscribed is not None:
            self._on_subscribed(sub)

    def reject(self, sub: Subscription, exc: RequestRejected) -> None:
        """Record a refusal; forget `sub` unless the refusal is temporary."""
        self.state.failed_subscriptions[label(sub)] = str(exc)
        if not isinstance(exc, SymbolUnavailable):
            self.desired.pop(sub, None)  # can never succeed; a temporary refusal is kept
        logger.warning("%s: subscription %s refused: %s", self.name, label(sub), exc)
        if self._on_refused is not None:
            self._on_refused(sub, exc)


def label(sub: Subscription) -> str:
    """`channel:symbol:interval`, as far as `sub` has them: its key in `failed_subscriptions`."""
    return ":".join(str(v) for v in (sub.channel, sub.symbol, sub.interval) if v is not None)
