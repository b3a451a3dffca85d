"""Validated value types shared by rules, the API and the bot: symbols, decimals, currencies.

Prices and amounts travel as decimal strings ("70000.5") and become `Decimal`; a JSON number
is refused because a float may already have lost the exact value the user meant.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

MAX_INTEGER_DIGITS = 20
MAX_FRACTION_DIGITS = 18

# [0-9], not \d: \d also matches other scripts' digits, which Decimal() would accept.
_DECIMAL_PATTERN = rf"^\s*[0-9]{{1,{MAX_INTEGER_DIGITS}}}(\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?\s*$"
_DECIMAL_RE = re.compile(_DECIMAL_PATTERN)
_SYMBOL_PATTERN = r"^[A-Za-z0-9]{1,16}-[A-Za-z0-9]{1,16}$"
_SYMBOL_RE = re.compile(_SYMBOL_PATTERN)
_CURRENCY_PATTERN = r"^[A-Za-z0-9]{1,16}$"
_CURRENCY_RE = re.compile(_CURRENCY_PATTERN)

_DECIMAL_HINT = (
    f'must be a decimal string such as "70000.5" (at most {MAX_INTEGER_DIGITS} digits '
    f"before the point and {MAX_FRACTION_DIGITS} after, no sign or exponent)"
)


def parse_decimal(value: Any) -> Decimal:
    """Turn a user's decimal string into a `Decimal`, with a message a person can act on."""
    if isinstance(value, Decimal):
        if not value.is_finite() or value < 0:
            raise ValueError(_DECIMAL_HINT)
        return value
    if isinstance(value, int | float):  # bool is an int too
        raise ValueError(f'give it as a string, e.g. "{value}", so it stays exact')
    if not isinstance(value, str) or not _DECIMAL_RE.fullmatch(value):
        raise ValueError(_DECIMAL_HINT)
    return Decimal(value.strip())


# What a price, quantity or amount can be, wherever one comes from (the exchange included):
# at most 40 significant digits, and a magnitude between 1e-30 and 1e30.
MAX_SIGNIFICANT_DIGITS = 40
MAX_EXPONENT = 30
_PRECISION = Context(prec=MAX_SIGNIFICANT_DIGITS)
_ZERO = Decimal(0)


class OutOfRange(ValueError):
    """A number no price or amount can be; the message is a short, fixed reason."""


def bounded(number: Decimal, *, signed: bool = False) -> Decimal:
    """`number` within the bounds above, with at most 40 digits (trailing zeros beyond them
    dropped; zero as plain 0), or OutOfRange. Negative numbers only when `signed`."""
    if not number.is_finite():
        raise OutOfRange("not a finite number")
    if number.is_zero():
        return _ZERO
    if number.is_signed() and not signed:
        raise OutOfRange("negative number")
    if not -MAX_EXPONENT <= number.adjusted() <= MAX_EXPONENT:
        raise OutOfRange("number out of range")
    rounded = _PRECISION.plus(number)
    if rounded != number:
        raise OutOfRange("too many digits")
    return rounded


def format_decimal(value: Decimal) -> str:
    """A decimal as plain digits, never in exponent notation."""
    return format(value, "f")


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


def _percent(value: Decimal) -> Decimal:
    if value <= 0 or value > 1000:
        raise ValueError("must be a percentage above 0 and at most 1000")
    return value


def _symbol(value: Any) -> str:
    if not isinstance(value, str) or not _SYMBOL_RE.fullmatch(value.strip()):
        raise ValueError('must be a symbol in the exchange\'s format, e.g. "BTC-USDT"')
    return value.strip().upper()


def _currency(value: Any) -> str:
    if not isinstance(value, str) or not _CURRENCY_RE.fullmatch(value.strip()):
        raise ValueError('must be a currency code such as "USDT"')
    return value.strip().upper()


def printable_text(value: str) -> str:
    """Refuse control characters (NUL and friends) in names and messages; keep newlines/tabs."""
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise ValueError("must not contain control characters")
    return value


def _decimal_schema(example: str, description: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "type": "string",
            "pattern": _DECIMAL_PATTERN,
            "examples": [example],
            "description": description,
        }
    )


_as_text = PlainSerializer(format_decimal, return_type=str, when_used="always")

Price = Annotated[
    Decimal,
    BeforeValidator(parse_decimal),
    AfterValidator(_positive),
    _as_text,
    _decimal_schema("70000.5", "A price as a decimal string, greater than 0."),
]
"""A price or quantity: a positive decimal string."""

Amount = Annotated[
    Decimal,
    BeforeValidator(parse_decimal),
    _as_text,
    _decimal_schema("100", "An amount as a decimal string, 0 or more."),
]
"""An amount that may be zero: a non-negative decimal string."""

Percent = Annotated[
    Decimal,
    BeforeValidator(parse_decimal),
    AfterValidator(_percent),
    _as_text,
    _decimal_schema("5", "A percentage as a decimal string, above 0 and at most 1000."),
]
"""A percentage: a decimal string in (0, 1000]."""

Symbol = Annotated[
    str,
    BeforeValidator(_symbol),
    WithJsonSchema({"type": "string", "pattern": _SYMBOL_PATTERN, "examples": ["BTC-USDT"]}),
]
"""A market symbol in the exchange's BASE-QUOTE form, upper-cased."""

Currency = Annotated[
    str,
    BeforeValidator(_currency),
    WithJsonSchema({"type": "string", "pattern": _CURRENCY_PATTERN, "examples": ["USDT"]}),
]
"""A currency code, upper-cased."""

Name = Annotated[
    str, StringConstraints(min_length=1, max_length=100), AfterValidator(printable_text)
]
"""A name a user gives: 1 to 100 characters, no control characters."""

Message = Annotated[str, StringConstraints(max_length=1000), AfterValidator(printable_text)]
"""A message template: up to 1000 characters, no control characters but newline and tab."""
