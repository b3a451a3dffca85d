"""Wire format of the simulated exchange: requests, responses, pushes, subscription keys."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Container
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from alerts.simulator.config import (
    DEFAULT_INTERVAL,
    INTERVAL_MS,
    MAX_INTERVAL_MS,
    MAX_ORDERBOOK_DEPTH,
)

#: A subscription as the client named it, e.g. ("ticker", "BTC-USDT", "1day") or ("balances",).
SubKey = tuple[str, ...]
JsonObject = dict[str, Any]

METHODS = frozenset({"ping", "auth", "subscribe", "unsubscribe", "unsubscribeAll"})
PUBLIC_CHANNELS = frozenset({"ticker", "tickers", "orderbook", "trades", "candles"})
PRIVATE_CHANNELS = frozenset({"balances", "activeOrders"})
SYMBOL_PATTERN = re.compile(r"[A-Z0-9]+-[A-Z0-9]+")


class ErrorCode(IntEnum):
    """JSON-RPC style error codes the exchange publishes."""

    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    ALREADY_SUBSCRIBED = -32002
    NOT_SUBSCRIBED = -32003
    SYMBOL_NOT_FOUND = -32005
    SYMBOL_INCORRECT = -32006
    INTERVAL_TOO_BIG = -32008
    SYMBOL_NOT_OPENED = -32009
    INVALID_TOKEN = -32030
    UNAUTHORIZED = -32033
    USER_BLOCKED = -32034
    RATE_LIMIT = -32050


MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.PARSE_ERROR: "Parse error",
    ErrorCode.INVALID_REQUEST: "Invalid Request",
    ErrorCode.METHOD_NOT_FOUND: "Method not found",
    ErrorCode.INVALID_PARAMS: "Invalid params",
    ErrorCode.INTERNAL_ERROR: "Internal error",
    ErrorCode.ALREADY_SUBSCRIBED: "Already subscribed",
    ErrorCode.NOT_SUBSCRIBED: "Not subscribed",
    ErrorCode.SYMBOL_NOT_FOUND: "Symbol not found",
    ErrorCode.SYMBOL_INCORRECT: "Symbol incorrect",
    ErrorCode.INTERVAL_TOO_BIG: "Interval too big",
    ErrorCode.SYMBOL_NOT_OPENED: "Symbol not opened",
    ErrorCode.INVALID_TOKEN: "Invalid token",
    ErrorCode.UNAUTHORIZED: "Unauthorized",
    ErrorCode.USER_BLOCKED: "User Blocked",
    ErrorCode.RATE_LIMIT: "Rate limit exceeded",
}

RequestId = str | int | float | None


class RequestError(Exception):
    """A request the server answers with an error object."""

    def __init__(
        self, code: ErrorCode, detail: str | None = None, *, request_id: RequestId = None
    ) -> None:
        super().__init__(detail or MESSAGES[code])
        self.code = code
        self.detail = detail
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class Request:
    """One well-formed request: id, method and an object of params."""

    id: str | int | float
    method: str
    params: object


@dataclass(frozen=True, slots=True)
class Subscription:
    """A validated subscribe/unsubscribe target."""

    channel: str
    key: SubKey
    symbol: str | None = None

    @property
    def private(self) -> bool:
        """True for channels that need an authenticated connection."""
        return self.channel in PRIVATE_CHANNELS


_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode(message: object) -> str:
    """Serialize one frame compactly."""
    return _ENCODER.encode(message)


def success(request_id: RequestId) -> str:
    """Frame of a successful response."""
    return encode({"id": request_id, "result": {"success": True}})


def error(request_id: RequestId, code: ErrorCode, detail: str | None = None) -> str:
    """Frame of an error response; `detail` goes into `data` where the exchange has one."""
    body: JsonObject = {"code": int(code), "message": MESSAGES[code]}
    if code is ErrorCode.USER_BLOCKED:
        body["data"] = {"detail": "Invalid authentication"}
    elif detail is not None:
        body["data"] = {"detail": detail}
    return encode({"id": request_id, "error": body})


def push(key: SubKey, data: object) -> str:
    """Frame of a subscription push to subscribers of `key`."""
    # Only `data` changes from push to push: the envelope is encoded once per key.
    return _push_prefix(key) + _ENCODER.encode(data) + "}}"


@functools.lru_cache(maxsize=8192)
def _push_prefix(key: SubKey) -> str:
    params = encode(push_params(key))
    return '{"method":"subscription","params":' + params[:-1] + ',"data":'


def parse_request(raw: str | bytes) -> Request:
    """Decode and check the envelope of one incoming frame."""
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RequestError(ErrorCode.PARSE_ERROR) from exc
    if not isinstance(message, dict):
        raise RequestError(ErrorCode.INVALID_REQUEST, "request must be an object")
    request_id = message.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | float):
        raise RequestError(ErrorCode.INVALID_REQUEST, "id must be a string or a number")
    method = message.get("method")
    if not isinstance(method, str):
        raise RequestError(
            ErrorCode.INVALID_REQUEST, "method must be a string", request_id=request_id
        )
    params = message.get("params")
    return Request(request_id, method, {} if params is None else params)


def params_object(request: Request) -> JsonObject:
    """The request's params, which must be an object."""
    if not isinstance(request.params, dict):
        raise RequestError(ErrorCode.INVALID_PARAMS, "params must be an object")
    return request.params


def parse_subscription(
    params: JsonObject,
    *,
    symbols: Container[str],
    default_depth: int,
) -> Subscription:
    """Validate subscription params and return the canonical key they name."""
    channel = params.get("channel")
    if not isinstance(channel, str) or channel not in PUBLIC_CHANNELS | PRIVATE_CHANNELS:
        raise RequestError(ErrorCode.INVALID_PARAMS, "unknown channel")
    if channel == "balances":
        return Subscription(channel, (channel,))
    if channel == "activeOrders":
        if params.get("symbol") is None:
            return Subscription(channel, (channel,))
        symbol = _symbol(params, symbols)
        return Subscription(channel, (channel, symbol), symbol)
    if channel == "tickers":
        return Subscription(channel, (channel, _interval(params, DEFAULT_INTERVAL)))
    symbol = _symbol(params, symbols)
    if channel == "ticker":
        return Subscription(channel, (channel, symbol, _interval(params, DEFAULT_INTERVAL)), symbol)
    if channel == "candles":
        return Subscription(channel, (channel, symbol, _interval(params, None)), symbol)
    if channel == "orderbook":
        depth = params.get("depth")
        if depth is None:
            return Subscription(channel, (channel, symbol), symbol)
        if isinstance(depth, bool) or not isinstance(depth, int):
            raise RequestError(ErrorCode.INVALID_PARAMS, "depth must be an integer")
        if not 1 <= depth <= MAX_ORDERBOOK_DEPTH:
            raise RequestError(ErrorCode.INVALID_PARAMS, f"depth must be 1..{MAX_ORDERBOOK_DEPTH}")
        return Subscription(channel, (channel, symbol, str(depth)), symbol)
    return Subscription(channel, (channel, symbol), symbol)


def orderbook_depth(key: SubKey, default: int) -> int:
    """Depth an orderbook key asks for."""
    return int(key[2]) if len(key) > 2 else default


def push_params(key: SubKey) -> JsonObject:
    """The `params` of a push for subscribers of `key` (only those that apply)."""
    channel = key[0]
    if channel in ("ticker", "candles"):
        return {"channel": channel, "symbol": key[1], "interval": key[2]}
    if channel == "tickers":
        return {"channel": channel, "interval": key[1]}
    if len(key) > 1 and channel != "balances":
        return {"channel": channel, "symbol": key[1]}
    return {"channel": channel}


def _symbol(params: JsonObject, symbols: Container[str]) -> str:
    symbol = params.get("symbol")
    if not isinstance(symbol, str):
        raise RequestError(ErrorCode.INVALID_PARAMS, "symbol must be a string")
    if SYMBOL_PATTERN.fullmatch(symbol) is None:
        raise RequestError(ErrorCode.SYMBOL_INCORRECT)
    if symbol not in symbols:
        raise RequestError(ErrorCode.SYMBOL_NOT_FOUND)
    return symbol


def _interval(params: JsonObject, default: str | None) -> str:
    interval = params.get("interval", default)
    if not isinstance(interval, str) or interval not in INTERVAL_MS:
        raise RequestError(ErrorCode.INVALID_PARAMS, "unknown interval")
    if INTERVAL_MS[interval] > MAX_INTERVAL_MS:
        raise RequestError(ErrorCode.INTERVAL_TOO_BIG)
    return interval


def malformed(kind: int, key: SubKey) -> str:
    """A frame that looks like a push for `key` but that no client can parse as one."""
    channel = key[0]
    match kind % 5:
        case 0:
            return '{"method":"subscription","params":{"channel":"' + channel + '","data":{'
        case 1:
            return encode({"method": "subscription", "params": {"channel": 42, "data": "x"}})
        case 2:
            return encode({"method": "subscription", "params": push_params(key)})
        case 3:
            return encode({"method": "surprise", "params": {"channel": channel, "data": {}}})
        case _:
            return encode([{"method": "subscription", "params": push_params(key)}])
