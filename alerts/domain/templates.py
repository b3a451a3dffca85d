"""User message templates: `{name}` placeholders only, checked on save, rendered safely.

A template may name placeholders and nothing else: no attribute access, indexing, conversion
or format spec, so a user's text can never reach into objects or run code.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from string import Formatter

from alerts.domain.rules import RuleKind

MAX_TEMPLATE_LENGTH = 1000

COMMON_PLACEHOLDERS = ("rule", "kind", "time")
_MARKET = ("symbol", "price", "source")
KIND_PLACEHOLDERS: dict[RuleKind, tuple[str, ...]] = {
    RuleKind.PRICE_CROSS: (*_MARKET, "level", "direction", "previous"),
    RuleKind.PRICE_RANGE: (*_MARKET, "low", "high", "direction", "previous"),
    RuleKind.PERCENT_CHANGE: (*_MARKET, "percent", "change", "window", "direction", "reference"),
    RuleKind.CANDLE_CLOSE: ("symbol", "price", "interval", "level", "direction", "open", "close"),
    RuleKind.LARGE_TRADE: ("symbol", "price", "quantity", "notional", "side"),
    RuleKind.SPREAD: ("symbol", "bid", "ask", "spread", "percent"),
    RuleKind.ORDER: (
        "symbol",
        "price",
        "order_id",
        "status",
        "side",
        "type",
        "quantity",
        "executed",
        "filled",
        "average_price",
        "account",
    ),
    RuleKind.BALANCE: ("currency", "before", "after", "change", "amount", "account"),
}


class TemplateError(ValueError):
    """A template the service will not render, with the reason."""


def placeholders_for(kind: RuleKind) -> tuple[str, ...]:
    """Every placeholder a template of this rule kind may use."""
    return (*COMMON_PLACEHOLDERS, *KIND_PLACEHOLDERS[kind])


def check_template(template: str, kind: RuleKind) -> None:
    """Raise `TemplateError` unless `template` uses only this kind's plain placeholders."""
    if len(template) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"a message template is at most {MAX_TEMPLATE_LENGTH} characters")
    check_placeholders(template, placeholders_for(kind), f"a {kind.value} rule")


def check_placeholders(template: str, allowed: Collection[str], user: str) -> None:
    """Raise `TemplateError` unless `template` names only `allowed` placeholders, plainly;
    the message lists what `user` ("a price_cross rule") may use."""
    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"{exc}; write a literal brace as {{{{ or }}}}") from None
    for _text, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in allowed:
            raise TemplateError(
                f"unknown placeholder {{{field}}}; {user} can use "
                + ", ".join(f"{{{name}}}" for name in allowed)
            )
        if spec or conversion:
            raise TemplateError(f"placeholder {{{field}}} takes no format spec or conversion")


def render_template(template: str, values: Mapping[str, str]) -> str:
    """Fill a checked template; a placeholder without a value renders as an empty string."""
    out: list[str] = []
    for text, field, _spec, _conversion in Formatter().parse(template):
        out.append(text)
        if field is not None:
            out.append(values.get(field, ""))
    return "".join(out)
