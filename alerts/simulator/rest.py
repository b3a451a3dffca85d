"""The exchange's REST API (protocol page §3), as the simulator serves it: on the WebSocket's
own port, a plain HTTP GET (no Upgrade) is answered here from the same market and accounts
that feed the channels.

    GET /api/v1/symbols
    GET /api/v1/candles?symbol&interval&startAt&endAt&limit        (closed candles)
    GET /api/v1/balances                                           (Authorization: Bearer)
    GET /api/v1/orders/history?startAt&endAt&symbol&side&limit     (Authorization: Bearer)

Answers are `{"success": true, "data": ...}`, errors an HTTP 4xx/5xx with
`{"success": false, "error": {"code", "message"}}`. Faults for tests: `RestFaults` makes the
next answers fail with a status (and Retry-After), come back malformed, or come late.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from alerts.simulator.accounts import ACTIVE, Accounts
from alerts.simulator.config import INTERVAL_MS, SimulatorConfig
from alerts.simulator.market import Market
from alerts.simulator.protocol import ErrorCode

MAX_LIMIT = 500
DEFAULT_LIMIT = 100


@dataclass
class RestFaults:
    """What the next REST answers do instead of answering well."""

    failures: deque[tuple[int, float | None]] = field(default_factory=deque)
    malformed: int = 0
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)  # every path asked, with its query

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        """Answer the next `count` requests with `status` (and a Retry-After, if given)."""
        self.failures.extend([(status, retry_after)] * count)


class _Refused(Exception):
    def __init__(self, status: HTTPStatus, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _int(query: dict[str, list[str]], name: str, default: int | None = None) -> int | None:
    values = query.get(name)
    if not values:
        return default
    try:
        return int(values[0])
    except ValueError:
        raise _Refused(HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_PARAMS, f"{name}") from None


class RestApi:
    """Answers the REST paths above; anything with `Upgrade: websocket` is left alone."""

    def __init__(
        self,
        config: SimulatorConfig,
        market: Market,
        accounts: Accounts,
        faults: RestFaults,
        now: Callable[[], int],
    ) -> None:
        self._config = config
        self._market = market
        self._accounts = accounts
        self.faults = faults
        self._now = now
        self._routes: dict[str, Callable[[dict[str, list[str]], int | None], Any]] = {
            "/api/v1/symbols": self._symbols,
            "/api/v1/candles": self._candles,
            "/api/v1/balances": self._balances,
            "/api/v1/orders/history": self._history,
        }

    async def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        """websockets' `process_request`: a REST answer, or None to go on with the handshake."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        faults = self.faults
        faults.requests.append(request.path)
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if faults.failures:
            status, retry_after = faults.failures.popleft()
            response = self._json(connection, HTTPStatus(status), _error(ErrorCode.INTERNAL_ERROR))
            if retry_after is not None:
                response.headers["Retry-After"] = str(retry_after)
            return response
        if faults.malformed:
            faults.malformed -= 1
            return self._json(connection, HTTPStatus.OK, '{"success": true, "data": [{"orderId"')
        url = urlsplit(request.path)
        route = self._routes.get(url.path)
        try:
            if route is None:
                raise _Refused(HTTPStatus.NOT_FOUND, ErrorCode.METHOD_NOT_FOUND, "no such path")
            user = self._user(request) if url.path in _PRIVATE else None
            data = route(parse_qs(url.query), user)
        except _Refused as exc:
            return self._json(connection, exc.status, _error(exc.code, exc.message))
        return self._json(connection, HTTPStatus.OK, json.dumps({"success": True, "data": data}))

    @staticmethod
    def _json(connection: ServerConnection, status: HTTPStatus, body: str) -> Response:
        response = connection.respond(status, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    def _user(self, request: Request) -> int:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Refused(HTTPStatus.UNAUTHORIZED, ErrorCode.UNAUTHORIZED, "Unauthorized")
        if token in self._config.blocked_tokens:
            raise _Refused(HTTPStatus.FORBIDDEN, ErrorCode.USER_BLOCKED, "User Blocked")
        user = self._config.tokens.get(token)
        if user is None:
            raise _Refused(HTTPStatus.UNAUTHORIZED, ErrorCode.INVALID_TOKEN, "Invalid token")
        return user

    def _symbols(self, _query: dict[str, list[str]], _user: int | None) -> list[dict[str, str]]:
        suspended = self._config.suspended_symbols
        return [
            {
                "symbol": symbol,
                "baseCurrency": symbol.split("-", 1)[0],
                "quoteCurrency": symbol.split("-", 1)[-1],
                "status": "SUSPENDED" if symbol in suspended else "TRADING",
            }
            for symbol in sorted(self._market.states)
        ]

    def _candles(self, query: dict[str, list[str]], _user: int | None) -> list[Any]:
        symbol = (query.get("symbol") or [""])[0]
        interval = (query.get("interval") or [""])[0]
        if symbol not in self._market.states:
            raise _Refused(HTTPStatus.BAD_REQUEST, ErrorCode.SYMBOL_NOT_FOUND, "Symbol not found")
        if interval not in INTERVAL_MS:
            raise _Refused(HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_PARAMS, "interval")
        start, end = _int(query, "startAt", 0) or 0, _int(query, "endAt")
        limit = _limit(query)
        kept = self._market.states[symbol].history.get(interval, ())
        chosen = [c for c in kept if c.open_time >= start and (end is None or c.open_time <= end)]
        return [c.payload(symbol, closed=True) for c in chosen[:limit]]

    def _balances(self, _query: dict[str, list[str]], user: int | None) -> list[Any]:
        assert user is not None
        return self._accounts.balances_payload(user)

    def _history(self, query: dict[str, list[str]], user: int | None) -> list[Any]:
        assert user is not None
        start = _int(query, "startAt")
        if start is None:
            raise _Refused(HTTPStatus.BAD_REQUEST, ErrorCode.INVALID_PARAMS, "startAt is required")
        end = _int(query, "endAt")
        symbol = _text(query, "symbol")
        side = _text(query, "side")
        orders = sorted(
            (
                o
                for o in self._accounts.orders.values()
                if o.user == user
                and o.status not in ACTIVE
                and o.updated_at >= start
                and (end is None or o.updated_at <= end)
                and (symbol is None or o.symbol == symbol)
                and (side is None or o.side == side.upper())
            ),
            key=lambda o: (o.updated_at, int(o.order_id)),
        )
        return [o.payload() for o in orders[: _limit(query)]]


_PRIVATE = frozenset({"/api/v1/balances", "/api/v1/orders/history"})


def _text(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _limit(query: dict[str, list[str]]) -> int:
    limit = _int(query, "limit", DEFAULT_LIMIT) or DEFAULT_LIMIT
    return max(1, min(limit, MAX_LIMIT))


def _error(code: int, message: str = "internal error") -> str:
    return json.dumps({"success": False, "error": {"code": code, "message": message}})
