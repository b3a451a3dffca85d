"""Typed feed errors, named by what the caller should do, and the one wire-error mapping."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


class FeedError(Exception):
    """Base of every feed error; `retryable` says whether backing off and retrying can help."""

    retryable: bool = True


class ConnectionLost(FeedError):
    """The connection dropped or went silent: reconnect with backoff."""


class RequestTimeout(FeedError):
    """The exchange did not answer a request in time: treat the connection as dead."""


class ExchangeError(FeedError):
    """An error answer from the exchange, carrying its JSON-RPC code."""

    code: int = 0
    default_message: str = "exchange error"

    def __init__(self, message: str | None = None, *, code: int | None = None) -> None:
        if code is not None:
            self.code = code
        self.message = message or self.default_message
        super().__init__(f"{self.message} (code {self.code})")


class RetryLater(ExchangeError):
    """A transient exchange-side condition: back off and send the same request again."""


class RateLimited(RetryLater):
    code = -32050
    default_message = "rate limit exceeded"


class ExchangeInternalError(RetryLater):
    code = -32603
    default_message = "internal error"


class AuthRejected(ExchangeError):
    """The exchange refused the credentials: stop and report, never retry with the same token."""

    retryable = False


class InvalidToken(AuthRejected):
    code = -32030
    default_message = "invalid token (invalid, expired or revoked)"


class Unauthorized(AuthRejected):
    code = -32033
    default_message = "unauthorized (insufficient permissions)"


class UserBlocked(AuthRejected):
    code = -32034
    default_message = "user blocked"


class RequestRejected(ExchangeError):
    """The request itself is wrong: sending it again unchanged cannot succeed."""

    retryable = False


class ParseError(RequestRejected):
    code = -32700
    default_message = "parse error: invalid JSON"


class InvalidRequest(RequestRejected):
    code = -32600
    default_message = "invalid request object"


class MethodNotFound(RequestRejected):
    code = -32601
    default_message = "method not found"


class InvalidParams(RequestRejected):
    code = -32602
    default_message = "invalid params"


class IncorrectDecimalPlaces(RequestRejected):
    code = -32000
    default_message = "incorrect decimal places"


class OrderNotFound(RequestRejected):
    code = -32001
    default_message = "order not found"


class AlreadySubscribed(RequestRejected):
    code = -32002
    default_message = "already subscribed"


class NotSubscribed(RequestRejected):
    code = -32003
    default_message = "not subscribed"


class SymbolNotFound(RequestRejected):
    code = -32005
    default_message = "symbol not found"


class SymbolIncorrect(RequestRejected):
    code = -32006
    default_message = "symbol incorrect"


class SymbolUnavailable(RequestRejected):
    """The symbol exists but cannot be used now; worth trying again on a later connection."""

    code = -32007
    default_message = "symbol not available"


class SymbolNotOpened(SymbolUnavailable):
    code = -32009
    default_message = "symbol not opened (trading not started or suspended)"


class IntervalTooBig(RequestRejected):
    code = -32008
    default_message = "interval too big"


class AssetNotAvailable(RequestRejected):
    code = -32010
    default_message = "asset not available"


class IncorrectPrecision(RequestRejected):
    code = -32011
    default_message = "incorrect precision"


class ValidationFailed(RequestRejected):
    code = -32032
    default_message = "validation error"


_BY_CODE: dict[int, type[ExchangeError]] = {
    cls.code: cls
    for cls in (
        RateLimited,
        ExchangeInternalError,
        InvalidToken,
        Unauthorized,
        UserBlocked,
        ParseError,
        InvalidRequest,
        MethodNotFound,
        InvalidParams,
        IncorrectDecimalPlaces,
        OrderNotFound,
        AlreadySubscribed,
        NotSubscribed,
        SymbolNotFound,
        SymbolIncorrect,
        SymbolUnavailable,
        SymbolNotOpened,
        IntervalTooBig,
        AssetNotAvailable,
        IncorrectPrecision,
        ValidationFailed,
    )
}

_MAX_MESSAGE = 200
_CODE = re.compile(r"-?[0-9]{1,9}")


def error_from_wire(error: Any, redact: Callable[[str], str] | None = None) -> ExchangeError:
    """Map the `error` member of a response to its typed exception; tolerant of any shape.

    `redact` scrubs secrets the exchange might echo back before they reach a message.
    """
    code: int | None = None
    message: str | None = None
    if isinstance(error, dict):
        raw_code = error.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code if -(2**31) <= raw_code < 2**31 else None
        elif isinstance(raw_code, str) and _CODE.fullmatch(raw_code):
            code = int(raw_code)
        raw_message = error.get("message")
        if isinstance(raw_message, str) and raw_message:
            # Redacted whole, then cut: cut first, a secret straddling the cut would keep its
            # head, which no longer matches the secret and so would not be redacted.
            message = redact(raw_message) if redact is not None else raw_message
            message = message[:_MAX_MESSAGE]
    cls = _BY_CODE.get(code) if code is not None else None
    if cls is None:
        # An unknown code is a refusal we cannot interpret: do not repeat the request blindly.
        return RequestRejected(message or "unknown exchange error", code=code or 0)
    return cls(message)
