"""Request handling: validate each incoming frame and answer it."""

from __future__ import annotations

import logging
from collections.abc import Container
from typing import Any

from alerts.simulator.config import SimulatorConfig
from alerts.simulator.hub import Connection, Faults, Hub
from alerts.simulator.market import now_ms
from alerts.simulator.protocol import (
    METHODS,
    PRIVATE_CHANNELS,
    ErrorCode,
    Request,
    RequestError,
    SubKey,
    error,
    params_object,
    parse_request,
    parse_subscription,
    success,
)
from alerts.simulator.publisher import Publisher

logger = logging.getLogger("alerts.simulator")


class Dispatcher:
    """Answers ping, auth, subscribe, unsubscribe and unsubscribeAll; records what it saw."""

    def __init__(
        self,
        config: SimulatorConfig,
        symbols: Container[str],
        hub: Hub,
        publisher: Publisher,
        faults: Faults,
    ) -> None:
        self._config = config
        self._symbols = symbols
        self._hub = hub
        self._publisher = publisher
        self.faults = faults
        self.pings_received = 0
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def handle(self, conn: Connection, raw: str | bytes) -> None:
        """Answer one incoming frame; never raises."""
        try:
            request = parse_request(raw)
        except RequestError as exc:
            conn.enqueue(error(exc.request_id, exc.code, exc.detail))
            return
        params = request.params if isinstance(request.params, dict) else {}
        self.requests.append((request.method, params))
        try:
            self._dispatch(conn, request)
        except RequestError as exc:
            conn.enqueue(error(request.id, exc.code, exc.detail))
        except Exception:
            # Carrying on is safe: a request changes only its own connection's state, so a bug
            # in one handler costs that request (answered with JSON-RPC's internal error, as an
            # exchange would), not the connection's other requests nor the other clients.
            logger.exception(
                "internal error handling %s (request id %r) on connection %s",
                request.method,
                request.id,
                conn.id,
            )
            conn.enqueue(error(request.id, ErrorCode.INTERNAL_ERROR))

    def _dispatch(self, conn: Connection, request: Request) -> None:
        method = request.method
        if method not in METHODS:
            raise RequestError(ErrorCode.METHOD_NOT_FOUND)
        if method == "ping":
            self.pings_received += 1
        elif self.faults.rate_limited > 0:
            self.faults.rate_limited -= 1
            raise RequestError(ErrorCode.RATE_LIMIT)
        elif method == "auth":
            self._auth(conn, params_object(request))
        elif method == "subscribe":
            self._subscribe(conn, request)
            return
        elif method == "unsubscribe":
            self._unsubscribe(conn, params_object(request))
        else:
            self._hub.unsubscribe(conn, list(conn.subs))
        conn.enqueue(success(request.id))

    def _auth(self, conn: Connection, params: dict[str, Any]) -> None:
        token = params.get("token")
        if not isinstance(token, str):
            raise RequestError(ErrorCode.INVALID_PARAMS, "token must be a string")
        if token in self._config.blocked_tokens:
            raise RequestError(ErrorCode.USER_BLOCKED)
        user = self._config.tokens.get(token)
        if user is None:
            raise RequestError(ErrorCode.INVALID_TOKEN)
        if conn.user is not None and conn.user != user:
            # Private routes are per user: the old user's subscriptions must not leak.
            self._hub.unsubscribe(conn, [k for k in conn.subs if is_private(k)])
        conn.user = user
        logger.info("connection %s authenticated as user %s", conn.id, user)

    def _subscribe(self, conn: Connection, request: Request) -> None:
        sub = parse_subscription(
            params_object(request),
            symbols=self._symbols,
            default_depth=self._config.orderbook_depth,
        )
        if sub.symbol is not None and sub.symbol in self._config.suspended_symbols:
            raise RequestError(ErrorCode.SYMBOL_NOT_OPENED)
        if sub.private and conn.user is None:
            raise RequestError(ErrorCode.UNAUTHORIZED)
        if sub.key in conn.subs:
            raise RequestError(ErrorCode.ALREADY_SUBSCRIBED)
        self._hub.subscribe(conn, sub.key)
        conn.enqueue(success(request.id))
        self._publisher.snapshot(conn, sub.key, now_ms())

    def _unsubscribe(self, conn: Connection, params: dict[str, Any]) -> None:
        channel = params.get("channel")
        if set(params) == {"channel"} and isinstance(channel, str):
            # Only the channel named, as the published example does: all of that channel.
            keys = [k for k in conn.subs if k[0] == channel]
            if keys:
                self._hub.unsubscribe(conn, keys)
                return
        sub = parse_subscription(
            params, symbols=self._symbols, default_depth=self._config.orderbook_depth
        )
        keys = [sub.key] if sub.key in conn.subs else []
        if not keys and sub.channel == "orderbook" and len(sub.key) == 2:
            # Without a depth, an unsubscribe means the symbol's book at whatever depth.
            keys = [k for k in conn.subs if k[:2] == sub.key]
        if not keys:
            raise RequestError(ErrorCode.NOT_SUBSCRIBED)
        self._hub.unsubscribe(conn, keys)


def is_private(key: SubKey) -> bool:
    """True for keys of channels that need authentication."""
    return key[0] in PRIVATE_CHANNELS
