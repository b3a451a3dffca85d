"""One resilient connection to the xRocket WebSocket API.

Connects, authenticates, restores every subscription at the top of each
connection, pings to keep it alive, and drops it when it goes silent. On any
drop it reconnects with capped, jittered backoff that resets only after a
connection stayed healthy. Credentials the exchange refuses end `run()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI, WebSocketException

from alerts.domain.events import BalanceUpdate, FeedEvent
from alerts.feed import protocol
from alerts.feed.backoff import Backoff
from alerts.feed.errors import (
    AlreadySubscribed,
    AuthRejected,
    ConnectionLost,
    FeedError,
    NotSubscribed,
    RequestRejected,
    RequestTimeout,
    RetryLater,
    SymbolUnavailable,
    error_from_wire,
)
from alerts.feed.protocol import PayloadError, Subscription
from alerts.feed.state import UNKNOWN_CHANNEL, ChannelStats, FeedState

logger = logging.getLogger("alerts.feed")
# websockets logs every frame at DEBUG, the auth request with its token included,
# so its logger is pinned at INFO whatever level the rest of the service runs at.
_wire_logger = logging.getLogger("alerts.feed.wire")
_wire_logger.setLevel(logging.INFO)

Sink = Callable[[FeedEvent], None]
T = TypeVar("T")

# Errors after which reconnecting may help; anything else is a bug and propagates.
_RECOVERABLE = (OSError, TimeoutError, FeedError, WebSocketException)
_WARN_EVERY = 60.0  # per channel and reason


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """How to reach the exchange and how patient to be with it."""

    url: str
    token: str | None = field(default=None, repr=False)
    name: str = "public"
    account: str | None = None
    ping_interval: float = 30.0
    ping_timeout: float = 10.0
    request_timeout: float = 10.0
    connect_timeout: float = 10.0
    stale_timeout: float = 75.0
    healthy_after: float = 10.0
    request_retries: int = 5
    max_frame_bytes: int = 4 * 1024 * 1024
    backoff: Backoff = field(default_factory=Backoff)


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
        self._sink = sink
        self._on_ready = on_ready
        self._on_disconnect = on_disconnect
        self._on_refused = on_refused
        self._on_subscribed = on_subscribed
        self._rng = rng or random.Random()
        self._desired: dict[Subscription, None] = {}
        self._active: set[Subscription] = set()
        self._ws: ClientConnection | None = None
        self._ready_since: float | None = None
        self._healthy_for = 0.0
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._stopping = asyncio.Event()
        self._fresh_balances = False
        self._stats: dict[str, ChannelStats] = {
            name: self.state.channel(name) for name in (*protocol.CHANNELS, UNKNOWN_CHANNEL)
        }
        self._warned_at: dict[tuple[str, str], float] = {}

    @property
    def subscriptions(self) -> frozenset[Subscription]:
        """What the client keeps subscribed across reconnects."""
        return frozenset(self._desired)

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
        if sub in self._desired:
            return
        self._desired[sub] = None
        ws = self._ws
        if ws is None or not self.ready:
            return  # the next handshake subscribes it
        try:
            await self._subscribe_on(ws, sub)
        except RequestRejected as exc:
            self._reject(sub, exc)
            raise
        except _RECOVERABLE as exc:
            # The connection is failing; the reconnect restores this subscription.
            logger.info("%s: subscribe %s deferred: %s", self.config.name, sub.params(), exc)

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop a subscription now and on later connections."""
        self._desired.pop(sub, None)
        self.state.failed_subscriptions.pop(_label(sub), None)
        ws = self._ws
        if ws is None or sub not in self._active:
            return
        self._active.discard(sub)
        with contextlib.suppress(NotSubscribed, *_RECOVERABLE):
            await self._request(ws, protocol.UNSUBSCRIBE, sub.params())

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
            self._active = set()
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
        self._active = set()
        self.state.connected = False
        self.state.ready = False
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, *_RECOVERABLE):
            await reader
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLost("connection closed"))
                future.exception()  # retrieved here, so no "never retrieved" warnings
        self._pending.clear()
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
                await self._request(ws, protocol.AUTH, {"token": self.config.token})
            except RequestRejected as exc:
                # A refused auth request cannot succeed by repetition either.
                raise AuthRejected(exc.message, code=exc.code) from None
        tried: set[Subscription] = set()
        # Loop: subscribe() calls made during the handshake add to the desired set.
        while pending := [s for s in self._desired if s not in self._active and s not in tried]:
            for sub in pending:
                tried.add(sub)
                try:
                    await self._subscribe_on(ws, sub)
                except RequestRejected as exc:
                    self._reject(sub, exc)

    async def _subscribe_on(self, ws: ClientConnection, sub: Subscription) -> None:
        if sub.channel == protocol.BALANCES:
            self._fresh_balances = True  # the first balances push after this is the full set
        with contextlib.suppress(AlreadySubscribed):
            await self._request(ws, protocol.SUBSCRIBE, sub.params())
        if sub not in self._desired:
            # Unsubscribed while the request was in flight: undo it on the exchange too.
            with contextlib.suppress(NotSubscribed):
                await self._request(ws, protocol.UNSUBSCRIBE, sub.params())
            return
        self._active.add(sub)
        self.state.failed_subscriptions.pop(_label(sub), None)
        if self._on_subscribed is not None:
            self._on_subscribed(sub)

    def _reject(self, sub: Subscription, exc: RequestRejected) -> None:
        self.state.failed_subscriptions[_label(sub)] = str(exc)
        if not isinstance(exc, SymbolUnavailable):
            self._desired.pop(sub, None)  # can never succeed; a temporary refusal is kept
        logger.warning("%s: subscription %s refused: %s", self.config.name, _label(sub), exc)
        if self._on_refused is not None:
            self._on_refused(sub, exc)

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
                await self._request(ws, protocol.PING, None, timeout=cfg.ping_timeout)
                self.state.pongs_received += 1
                next_ping = time.monotonic() + cfg.ping_interval
                continue
            await asyncio.sleep(max(0.0, min(next_ping, last + cfg.stale_timeout) - now))

    # --- requests -----------------------------------------------------------------

    async def _request(
        self,
        ws: ClientConnection,
        method: str,
        params: dict[str, Any] | None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Send a request and await its answer, backing off on transient refusals."""
        retries = self.config.request_retries
        for attempt in itertools.count():
            try:
                return await self._request_once(ws, method, params, timeout)
            except RetryLater:
                if attempt >= retries:
                    raise
                await asyncio.sleep(self.config.backoff.delay(attempt, self._rng))
        raise AssertionError("unreachable")

    async def _request_once(
        self,
        ws: ClientConnection,
        method: str,
        params: dict[str, Any] | None,
        timeout: float | None,
    ) -> Any:
        request_id = str(next(self._ids))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        limit = timeout if timeout is not None else self.config.request_timeout
        try:
            await ws.send(protocol.encode_request(request_id, method, params))
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            raise RequestTimeout(f"no answer to {method} within {limit:g}s") from None
        except ConnectionClosed as exc:
            raise ConnectionLost(f"connection closed during {method}") from exc
        finally:
            self._pending.pop(request_id, None)

    # --- incoming frames ----------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._on_frame(raw)
        except ConnectionClosed as exc:
            raise ConnectionLost(f"connection closed ({exc})") from None
        raise ConnectionLost("closed by the server")

    def _on_frame(self, raw: str | bytes) -> None:
        self.state.last_message_monotonic = time.monotonic()
        fast = protocol.parse_fast(raw)
        if fast is not None:
            channel, events = fast
            stats = self._stats[channel]
            stats.pushes += 1
            stats.events += len(events)
            self._deliver(channel, events)
            return
        try:
            message = protocol.decode_frame(raw)
        except ValueError:
            self.state.invalid_frames += 1
            self._warn(UNKNOWN_CHANNEL, "frame is not valid JSON", self.state.invalid_frames)
            return
        if type(message) is dict:
            method = message.get("method")
            if method == protocol.PUSH_METHOD:
                self._on_push(message.get("params"))
                return
            if method is None and "id" in message:
                self._on_response(message)
                return
        self.state.ignored_messages += 1
        logger.debug("%s: ignored a message that is neither answer nor push", self.config.name)

    def _on_push(self, params: Any) -> None:
        named = params.get("channel") if type(params) is dict else None
        channel = named if type(named) is str and named in self._stats else UNKNOWN_CHANNEL
        stats = self._stats[channel]
        stats.pushes += 1
        refused: list[str] = []
        try:
            events = protocol.parse_push(params, self.config.account, refused)
        except PayloadError as exc:
            refused.append(exc.reason)
            events = []
        for reason in refused:
            self._warn(channel, reason, stats.refuse(reason))
        if not events:
            if refused:
                stats.unparseable += 1
            return
        stats.events += len(events)
        self._deliver(channel, events)

    def _deliver(self, channel: str, events: list[FeedEvent]) -> None:
        sink = self._sink
        for event in events:
            if self._fresh_balances and type(event) is BalanceUpdate:
                self._fresh_balances = False
                event = msgspec.structs.replace(event, full=True)
            try:
                sink(event)
            except Exception:
                self.state.sink_errors += 1
                logger.exception("%s: event consumer failed on %s", self.config.name, channel)

    def _on_response(self, message: dict[str, Any]) -> None:
        future = self._pending.get(str(message.get("id")))
        if future is None or future.done():
            self.state.ignored_messages += 1
            return
        error = message.get("error")
        if error is not None:
            future.set_exception(error_from_wire(error, redact=self._scrub))
        else:
            future.set_result(message.get("result"))

    def _warn(self, channel: str, reason: str, count: int) -> None:
        """Log a refused push or element, at most once a minute per channel and reason."""
        now, key = time.monotonic(), (channel, reason)
        if now - self._warned_at.get(key, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned_at[key] = now
            logger.warning(
                "%s: refused a %s push (%s); %d so far", self.config.name, channel, reason, count
            )

    def _scrub(self, text: str) -> str:
        token = self.config.token
        return text.replace(token, "***") if token else text


def _label(sub: Subscription) -> str:
    return ":".join(str(v) for v in (sub.channel, sub.symbol, sub.interval) if v is not None)
