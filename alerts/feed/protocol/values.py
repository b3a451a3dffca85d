"""Bounded readers of one payload field each: numbers, times, ids, symbols, sides, statuses.

A value of the wrong type in an optional field is dropped; a value of the right type but out
of bounds refuses its element (`_Bounds`). The `_`-names are shared by the parsers of this
package and are not for use outside it.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from alerts.domain.events import BookLevel, DayStats, OrderStatus, Side
from alerts.domain.values import OutOfRange, bounded

# Millisecond timestamps below this are taken as seconds (it is year 5138 in seconds).
_SECONDS_CUTOFF = 100_000_000_000
# Timestamps past this (year ~318857) are garbage, not times.
_MAX_MILLIS = 10**16


MAX_SYMBOL = 40
MAX_ID = 128
_SYMBOL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,39}")
_CURRENCY = re.compile(r"[A-Za-z0-9]{1,20}")
# A decimal's text longer than this cannot be 40 digits, a point, a sign and an exponent.
_MAX_NUMBER_TEXT = 64


class PayloadError(ValueError):
    """A push (or one element of a list push) whose `data` cannot be turned into events; its
    message is a short reason from a fixed set, fit for a metric's label."""

    @property
    def reason(self) -> str:
        """Why, in a few words."""
        return str(self.args[0]) if self.args else "unusable"


class _Bounds(PayloadError):
    """A value of the right type but out of bounds: it refuses its element even where the
    field is optional (a wrongly typed optional field is merely dropped)."""


def _number(value: Any) -> Decimal:
    kind = type(value)
    if kind is str:
        if len(value) > _MAX_NUMBER_TEXT:
            raise _Bounds("number too long")
        try:
            return Decimal(value)
        except InvalidOperation:
            raise PayloadError("not a decimal number") from None
    if kind is Decimal:
        return value  # type: ignore[no-any-return]
    if kind is int:
        if not -(10**40) < value < 10**40:
            raise _Bounds("number out of range")
        return Decimal(value)
    if kind is float:
        return Decimal(repr(value))
    raise PayloadError("not a number")


def _dec(value: Any, *, signed: bool = False) -> Decimal:
    try:
        return bounded(_number(value), signed=signed)
    except OutOfRange as exc:
        raise _Bounds(str(exc)) from None


def _req_dec(item: dict[str, Any], key: str) -> Decimal:
    value = item.get(key)
    if value is None:
        raise PayloadError(f"missing {key}")
    return _dec(value)


def _opt_dec(item: dict[str, Any], key: str) -> Decimal | None:
    value = item.get(key)
    if value is None:
        return None
    try:
        return _dec(value)
    except _Bounds:
        raise
    except PayloadError:
        return None


def millis(value: int | None) -> int | None:
    """A plausible Unix time in milliseconds (seconds are scaled up), else None."""
    if value is None or value < 0:
        return None
    if value < _SECONDS_CUTOFF:
        value *= 1000
    return value if value < _MAX_MILLIS else None


def _opt_time(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    try:
        number = _dec(value)
    except PayloadError:
        return None
    return millis(int(number)) if number.adjusted() < 18 else None


def _opt_str(item: dict[str, Any], key: str) -> str | None:
    """An id or a name: a string, or an integer as text; at most 128 characters."""
    value = item.get(key)
    if type(value) is str:
        if len(value) > MAX_ID:
            raise _Bounds("id too long")
        if not value.isprintable():  # NUL and friends: no database text column takes them
            raise _Bounds("unprintable text")
        return value
    if type(value) is int:
        if not -(10**40) < value < 10**40:
            raise _Bounds("id too long")
        return str(value)
    return None


def symbol_ok(symbol: str) -> bool:
    """Whether `symbol` is one the exchange can have (40 characters of the symbol alphabet)."""
    return _SYMBOL.fullmatch(symbol) is not None


def _symbol(item: dict[str, Any], context: dict[str, Any]) -> str:
    symbol = item.get("symbol")
    if type(symbol) is not str or not symbol:
        symbol = context.get("symbol")
    if type(symbol) is not str or not symbol:
        raise PayloadError("missing symbol")
    if not symbol_ok(symbol):
        raise _Bounds("bad symbol")
    return symbol.upper()


def _side(item: dict[str, Any]) -> Side | None:
    value = item.get("side")
    if type(value) is str:
        upper = value.upper()
        if upper == "BUY":
            return Side.BUY
        if upper == "SELL":
            return Side.SELL
    return None


_STATUS_ALIASES = {
    "CANCELLED": OrderStatus.CANCELED,
    "PARTIALLY-FILLED": OrderStatus.PARTIALLY_FILLED,
}


def _status(item: dict[str, Any]) -> OrderStatus:
    value = item.get("status")
    if type(value) is not str:
        raise PayloadError("missing status")
    upper = value.upper()
    try:
        return OrderStatus(upper)
    except ValueError:
        alias = _STATUS_ALIASES.get(upper)
        if alias is None:
            raise PayloadError("unknown order status") from None
        return alias


def _objects(data: Any) -> list[Any]:
    """The elements of `data`, whether it is one object or a list of them."""
    if type(data) is dict:
        return [data]
    if type(data) is list:
        return data
    raise PayloadError("data is neither an object nor a list")


def _object(item: Any) -> dict[str, Any]:
    if type(item) is not dict:
        raise PayloadError("list item is not an object")
    return item


def _levels(value: Any) -> tuple[BookLevel, ...]:
    if value is None:
        return ()
    if type(value) is not list:
        raise PayloadError("book side is not a list")
    levels = []
    for entry in value:
        if type(entry) is list and len(entry) >= 2:
            levels.append(BookLevel(_dec(entry[0]), _dec(entry[1])))
        elif type(entry) is dict:
            levels.append(BookLevel(_req_dec(entry, "price"), _req_dec(entry, "quantity")))
        else:
            raise PayloadError("book level is neither [price, quantity] nor an object")
    return tuple(levels)


def _opt_text(item: dict[str, Any], key: str) -> str | None:
    """Decimal text kept for later: strings as they are, JSON numbers as their text (read,
    bounded, only when used: see `DayStats`); text too long to be a number is dropped."""
    value = item.get(key)
    kind = type(value)
    if kind is str or kind is Decimal or kind is int:
        text = str(value)
        return text if len(text) <= _MAX_NUMBER_TEXT else None
    return None


def _day_stats(*texts: str | None) -> DayStats | None:
    for text in texts:
        if text is not None:
            return DayStats(*texts)
    return None
