"""What a webhook delivery POSTs, and how it is signed.

The body is JSON: by default the event object below, or the destination's `body` template
with each string value rendered like a message template (keys are never rendered).

Event object (`"type": "alert"`; every value of the event is a string, decimals as plain
digits, and names the same placeholders message templates use):

    {"type": "alert", "event_id": 42, "delivery_id": 99, "rule_id": 7,
     "rule_name": "BTC 70k", "kind": "price_cross", "symbol": "BTC-USDT",
     "values": {"price": "70001.5", "level": "70000", "direction": "up", ...},
     "fired_at": "2026-12-02T03:00:00.123456+00:00", "late": false, "test": false,
     "held": false, "fallback": false}

`late`: found after a connection gap (an account's event reported when the service came
back, or a crossing detected on the first price after a gap); `held`: kept back by quiet
hours or a mute and sent when they ended; `fallback`: sent to a rule's fallback destination
because every primary delivery failed.

Signature (with a secret): `X-Alerts-Signature: t=<unix seconds>,v1=<hex>`, where `<hex>` is
HMAC-SHA256 with the secret as key over `"<t>.<body>"` (the body's exact bytes). A receiver
recomputes it, compares in constant time, and refuses a `t` too far from its own clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import msgspec

from alerts.domain.templates import (
    COMMON_PLACEHOLDERS,
    KIND_PLACEHOLDERS,
    TemplateError,
    check_placeholders,
    render_template,
)

MAX_BODY_TEMPLATE = 8192  # characters of the template as JSON
MAX_DEPTH = 8
# What a body template may name: every rule kind's placeholders, and the event's ids.
EVENT_PLACEHOLDERS = ("event_id", "delivery_id", "rule_id", "fired_at")
BODY_PLACEHOLDERS = sorted(
    {*COMMON_PLACEHOLDERS, *EVENT_PLACEHOLDERS}.union(*KIND_PLACEHOLDERS.values())
)

_encode = msgspec.json.Encoder().encode


class BodyTemplateError(ValueError):
    """A body template the service will not render, with the reason."""


def check_body_template(body: Any) -> None:
    """Raise `BodyTemplateError` unless `body` is a JSON object or array, not too big nor too
    deep, whose strings use only known placeholders, plainly."""
    if not isinstance(body, dict | list):
        raise BodyTemplateError("body must be a JSON object or array")
    if len(json.dumps(body, ensure_ascii=False)) > MAX_BODY_TEMPLATE:
        raise BodyTemplateError(f"body is at most {MAX_BODY_TEMPLATE} characters as JSON")
    _check(body, 1)


def _check(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BodyTemplateError(f"body nests at most {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for item in value.values():
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)
    elif isinstance(value, str):
        try:
            check_placeholders(value, BODY_PLACEHOLDERS, "a body")
        except TemplateError as exc:
            raise BodyTemplateError(str(exc)) from None


def render_body(template: Any, values: Mapping[str, str]) -> Any:
    """The template with each string rendered (a placeholder without a value: empty)."""
    if isinstance(template, dict):
        return {key: render_body(item, values) for key, item in template.items()}
    if isinstance(template, list):
        return [render_body(item, values) for item in template]
    if isinstance(template, str):
        return render_template(template, values)
    return template


def event_object(
    *,
    event_id: int,
    delivery_id: int,
    rule_id: int | None,
    rule_name: str,
    kind: str,
    symbol: str | None,
    values: Mapping[str, Any],
    fired_at: str,
    late: bool,
    test: bool,
    held: bool,
    fallback: bool,
) -> dict[str, Any]:
    """The documented default body."""
    return {
        "type": "alert",
        "event_id": event_id,
        "delivery_id": delivery_id,
        "rule_id": rule_id,
        "rule_name": rule_name,
        "kind": kind,
        "symbol": symbol,
        "values": {k: str(v) for k, v in values.items() if v is not None},
        "fired_at": fired_at,
        "late": late,
        "test": test,
        "held": held,
        "fallback": fallback,
    }


def encode(body: Any) -> bytes:
    """The body's bytes, as sent and signed."""
    return _encode(body)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Alerts-Signature` header's value."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"
