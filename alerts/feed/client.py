"""One resilient connection to the xRocket WebSocket API.

Connects, authenticates, restores every subscription at the top of each
connection, pings to keep it alive, and drops it when it goes silent. On any
drop it reconnects with capped, jittered backoff that resets only after a
connection stayed healthy. Credentials the exchange refuses end `run()`.

This module is the connection loop; the rest is one module each: requests and
their answers (`requester`), subscription bookkeeping (`subscriptions`), and
incoming frames (`inbound`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException

from alerts.feed import protocol
from alerts.feed.config import FeedConfig
from alerts.feed.errors import (
    AuthRejected,
    ConnectionLost,
    FeedError,
    NotSubscribed,
    RequestRejected,
)
from alerts.feed.inbound import Inbound, Sink
from alerts.feed.protocol import Subscription
from alerts.feed.requester import Requester
from alerts.feed.state import FeedState
from alerts.feed.subscriptions import SubscriptionBook

__all__ = ["FeedClient", "FeedConfig", "Sink"]

logger = logging.getLogger("alerts.feed")
# websockets logs every frame at DEBUG, the auth request with its token included,
# so its logger is pinned at INFO whatever level the rest of the service runs at.
_wire_logger = logging.getLogger("alerts.feed.wire")
_wire_logger.setLevel(logging.INFO)

T = TypeVar("T")

# Errors after which reconnecting may help; anything else is a bug and propagates.
_RECOVERABLE = (OSError, TimeoutError, FeedError, WebSocketException)


class FeedClient:
    """A self-healing client of the xRocket API that hands typed events to a sink."""

    def __init__(
        self,
        config: FeedConfig,
        sink: Sink,
        *,
        on_ready: Callable[[], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        on_refused: Callable[[Subscription, RequestRejected], None] | None = None,
        on_subscribed: Callable[[Subscription], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.state = FeedState(name=config.name)
        self._on_ready = on_ready
        self._on_disconnect = on_disconnect
        self._rng = rng or random.Random()
        self._ws: ClientConnection | None = None
        self._ready_since: float | None = None
        self._healthy_for = 0.0
        self._stopping = asyncio.Event()
        self._requester = Requester(config, self._rng, self._scrub)
        self._inbound = Inbound(config, self.state, sink, self._requester.answer)
        self._subs = SubscriptionBook(
            config.name,
            self.state,
            self._requester,
            on_balances=self._inbound.expect_full_balances,
            on_refused=on_refused,
            on_subscribed=on_subscribed,
        )

    @property
    def subscriptions(self) -> frozenset[Subscription]:
        """What the client keeps subscribed across reconnects."""
        return frozenset(self._subs.desired)

    @property
    def ready(self) -> bool:
        """Connected, authenticated and every subscription restored."""
        return self._ready_since is not None

    # --- public control -----------------------------------------------------------

    async def run(self) -> None:
        """Keep a connection up until `stop()`; raise `AuthRejected` if credentials are refused."""
        attempt = 0
        while not self._stopping.is_set():
            self.state.attempts += 1
            try:
                await self._session()
                reason = "closed by the server"
            except InvalidURI:
                raise  # a configuration error: no amount of retrying fixes it
            except AuthRejected as exc:
                self.state.fatal_error = exc
                self.state.last_error = str(exc)
                logger.error("%s: credentials refused, not reconnecting: %s", self.config.name, exc)
                raise
            except _RECOVERABLE as exc:
                reason = self._scrub(f"{type(exc).__name__}: {exc}")
            if self._stopping.is_set():
                break
            self.state.last_error = reason
            if self._stayed_healthy():
                attempt = 0
            delay = self.config.backoff.delay(attempt, self._rng)
            attempt += 1
            self.state.recent_delays.append(delay)
            logger.warning(
                "%s: connection lost (%s); reconnecting in %.3fs", self.config.name, reason, delay
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def stop(self) -> None:
        """Close the connection and make `run()` return; final, even before `run()` starts."""
        self._stopping.set()
        ws = self._ws
        if ws is not None:
            await ws.close()

    async def subscribe(self, sub: Subscription) -> None:
        """Subscribe now if connected, and on every later connection.

        Raises `RequestRejected` when the exchange refuses the subscription itself.
        """
        if sub.private and not self.config.token:
            raise ValueError(f"channel {sub.channel} needs an authenticated connection")
        if not self._subs.want(sub):
            return
        ws = self._ws
        if ws is None or not self.ready:
            return  # the next handshake subscribes it
        try:
            await self._subs.subscribe_on(ws, sub)
        except RequestRejected as exc:
            self._subs.reject(sub, exc)
            raise
        except _RECOVERABLE as exc:
            # The connection is failing; the reconnect restores this subscription.
            logger.info("%s: subscribe %s deferred: %s", self.config.name, sub.params(), exc)

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop a subscription now and on later connections."""
        self._subs.drop(sub)
        ws = self._ws
        if ws is None or sub not in self._subs.active:
            return
        self._subs.active.discard(sub)
        with contextlib.suppress(NotSubscribed, *_RECOVERABLE):
            await self._requester.request(ws, protocol.UNSUBSCRIBE, sub.params())

    # --- one connection -----------------------------------------------------------

    async def _session(self) -> None:
        cfg = self.config
        async with connect(
            cfg.url,
            open_timeout=cfg.connect_timeout,
            close_timeout=1,
            ping_interval=None,  # the exchange expects its own application-level ping
            max_size=cfg.max_frame_bytes,
            logger=_wire_logger,
        ) as ws:
            if self._stopping.is_set():
                return  # stop() came while the connection was opening
            self._ws = ws
            self._subs.reset()
            state = self.state
            state.connected = True
            state.connects += 1
            state.connected_at = datetime.now(UTC)
            state.last_message_monotonic = time.monotonic()
            logger.info("%s: connected to %s", cfg.name, cfg.url)
            reader = asyncio.create_task(self._read(ws))
            try:
                await self._race(reader, self._handshake(ws))
                self._ready_since = time.monotonic()
                state.ready = True
                if self._on_ready is not None:
                    self._on_ready()
                await self._race(reader, self._keepalive(ws))
            finally:
                await self._teardown(reader)

    async def _teardown(self, reader: asyncio.Task[None]) -> None:
        was_ready = self.ready
        self._ws = None
        self._subs.reset()
        self.state.connected = False
        self.state.ready = False
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, *_RECOVERABLE):
            await reader
        self._requester.fail_all()
        if was_ready:
            self._healthy_for = time.monotonic() - (self._ready_since or 0.0)
        self._ready_since = None
        if self._on_disconnect is not None:
            self._on_disconnect()

    def _stayed_healthy(self) -> bool:
        healthy_for, self._healthy_for = self._healthy_for, 0.0
        return healthy_for >= self.config.healthy_after

    async def _race(self, reader: asyncio.Task[None], work: Coroutine[Any, Any, T]) -> T:
        """Run `work` while the reader lives; if the reader ends first, so does `work`."""
        task = asyncio.create_task(work)
        try:
            await asyncio.wait({reader, task}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # Cancelled from outside: take `work` down too, or it would outlive the session
            # and fail later with nobody to see it.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_RECOVERABLE):
                await task
            raise
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, *_RECOVERABLE):
            await task
        reader.result()  # raises why the connection ended
        raise ConnectionLost("closed by the server")

    async def _handshake(self, ws: ClientConnection) -> None:
        if self.config.token:
            try:
                await self._requester.request(ws, protocol.AUTH, {"token": self.config.token})
            except RequestRejected as exc:
                # A refused auth request cannot succeed by repetition either.
                raise AuthRejected(exc.message, code=exc.code) from None
        await self._subs.restore(ws)

    async def _keepalive(self, ws: ClientConnection) -> None:
        cfg = self.config
        next_ping = time.monotonic() + cfg.ping_interval
        while True:
            now = time.monotonic()
            last = self.state.last_message_monotonic or now
            if now - last >= cfg.stale_timeout:
                raise ConnectionLost(f"no message for {now - last:.1f}s")
            if now >= next_ping:
                self.state.pings_sent += 1
                await self._requester.request(ws, protocol.PING, None, timeout=cfg.ping_timeout)
                self.state.pongs_received += 1
                next_ping = time.monotonic() + cfg.ping_interval
                continue
            await asyncio.sleep(max(0.0, min(next_ping, last + cfg.stale_timeout) - now))

    # --- incoming frames ----------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        on_frame = self._inbound.on_frame
        try:
            async for raw in ws:
                on_frame(raw)
        except ConnectionClosed as exc:
            raise ConnectionLost(f"connection closed ({exc})") from None
        raise ConnectionLost("closed by the server")

    def _on_frame(self, raw: str | bytes) -> None:
        """Handle one frame as the reader would (tests feed frames in here)."""
        self._inbound.on_frame(raw)

    def _scrub(self, text: str) -> str:
        token = self.config.token
        return text.replace(token, "***") if token else text
