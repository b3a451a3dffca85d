"""Alert messages: a default text per rule kind, or the rule's own template, rendered so that
prices, symbols and user text can never break the formatting (everything is HTML-escaped)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alerts.domain.templates import render_template

TELEGRAM_LIMIT = 4096
_ARROWS = {"up": "⬆️", "down": "⬇️", "enter": "↘️", "exit": "↗️", "above": "⬆️", "below": "⬇️"}


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered alert: a title, a plain-text body and the same body as Telegram HTML."""

    title: str
    text: str
    html: str
    rule_id: int | None


def _v(values: Mapping[str, Any], key: str) -> str:
    value = values.get(key)
    return "" if value is None else str(value)


def default_text(kind: str, values: Mapping[str, Any]) -> str:
    """What happened, in one or two lines, for each kind of rule."""
    s, price = _v(values, "symbol"), _v(values, "price")
    if kind == "price_cross":
        way = _v(values, "direction")
        return (
            f"{s} crossed {_v(values, 'level')} {way}: now {price} (was {_v(values, 'previous')})"
        )
    if kind == "price_range":
        verb = "entered" if _v(values, "direction") == "enter" else "left"
        return f"{s} {verb} {_v(values, 'low')} to {_v(values, 'high')}: now {price}"
    if kind == "percent_change":
        return (
            f"{s} moved {_v(values, 'change')}% within {_v(values, 'window')} s: now {price} "
            f"(from {_v(values, 'reference')})"
        )
    if kind == "candle_close":
        return (
            f"{s} {_v(values, 'interval')} candle closed {_v(values, 'direction')} "
            f"{_v(values, 'level')}: close {_v(values, 'close')}"
        )
    if kind == "large_trade":
        return (
            f"{s} large {_v(values, 'side').lower() or 'trade'}: {_v(values, 'quantity')} at "
            f"{price} ({_v(values, 'notional')})"
        )
    if kind == "spread":
        return (
            f"{s} spread {_v(values, 'percent')}%: bid {_v(values, 'bid')}, ask {_v(values, 'ask')}"
        )
    if kind == "order":
        return _order_text(s, values)
    if kind == "balance":
        return (
            f"{_v(values, 'currency')} balance {_v(values, 'before')} → {_v(values, 'after')} "
            f"({_v(values, 'change')})"
        )
    if kind == "feed_stale":
        return (
            f"No prices for {s} from the exchange for {_v(values, 'seconds')} s: its alerts "
            "cannot fire until they resume. You will be told when they do."
        )
    if kind == "feed_recovered":
        return f"Prices for {s} are arriving again; its alerts are back on watch."
    if kind == "symbol_refused":
        return (
            f"{s}: {_v(values, 'status')}. Your alerts on it cannot fire while it is; they "
            "stay as they are, and the service keeps checking (less and less often, at "
            "least hourly)."
        )
    if kind == "account":
        return f"Account {_v(values, 'account')} was {_v(values, 'status')}: {_v(values, 'reason')}"
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))


def _order_text(symbol: str, values: Mapping[str, Any]) -> str:
    status, filled, executed = _v(values, "status"), _v(values, "filled"), _v(values, "executed")
    if status == "PARTIALLY_FILLED" and filled not in ("", "0"):
        fill = f", filled {filled} more ({executed} of {_v(values, 'quantity')} in all)"
    else:
        fill = f", filled {executed}"
    if _v(values, "average_price"):
        fill += f" at {_v(values, 'average_price')}"
    text = (
        f"Order {_v(values, 'order_id')} {symbol} {_v(values, 'side')} {_v(values, 'type')} "
        f"{_v(values, 'quantity')}: {status}{fill}"
    )
    return text


def render(
    *,
    kind: str,
    rule_name: str,
    values: Mapping[str, Any],
    template: str | None,
    rule_id: int | None,
    test: bool = False,
    after_gap: bool = False,
) -> Message:
    """The message for one fired event."""
    strings = {k: str(v) for k, v in values.items() if v is not None}
    strings.setdefault("rule", rule_name)
    body = render_template(template, strings) if template else default_text(kind, strings)
    while len(html.escape(body)) > TELEGRAM_LIMIT - 500:
        body = body[: len(body) * 3 // 4] + "…"  # escaping can grow text up to six-fold
    notes = []
    if strings.get("late"):  # an account event found in the history after a gap
        at = f" at {strings['at']}" if strings.get("at") else ""
        notes.append(f"late: this happened{at}, {strings['late']}")
    elif after_gap:
        notes.append("detected on the first price after a connection gap")
    if test:
        notes.append("test message")
    when = strings.get("time", "")
    title = f"{'🧪 ' if test else ''}{_ARROWS.get(strings.get('direction', ''), '🔔')} {rule_name}"
    text_lines = [title, body, *(f"({n})" for n in notes)]
    if when:
        text_lines.append(when)
    html_lines = [
        f"<b>{html.escape(title)}</b>",
        html.escape(body),
        *(f"<i>{html.escape(n)}</i>" for n in notes),
    ]
    if when:
        html_lines.append(f"<code>{html.escape(when)}</code>")
    return Message(
        title=title,
        text=_fit("\n".join(text_lines)),
        html=_fit_html(html_lines),
        rule_id=rule_id,
    )


def digest(messages: Sequence[Message], title: str | None = None, more: int = 0) -> Message:
    """Many alerts for one chat as one message (flood control, or a held summary listing
    the newest few and counting the `more` it leaves out)."""
    title = title or f"🔔 {len(messages)} alerts"
    lines, parts = [title], [f"<b>{html.escape(title)}</b>"]
    for m in messages:
        body = m.text.splitlines()[1] if len(m.text.splitlines()) > 1 else ""
        lines.append(f"• {m.title}: {body}")
        parts.append(f"• <b>{html.escape(m.title)}</b>: {html.escape(body)}")
    if more > 0:
        tail = f"…and {more} earlier alert{'' if more == 1 else 's'}"
        lines.append(tail)
        parts.append(f"<i>{html.escape(tail)}</i>")
    return Message(title=title, text=_fit("\n".join(lines)), html=_fit_html(parts), rule_id=None)


def _fit(text: str) -> str:
    if len(text) <= TELEGRAM_LIMIT:
        return text
    return text[: TELEGRAM_LIMIT - 1] + "…"


def _fit_html(lines: list[str]) -> str:
    # Cut at a line boundary, so no tag or entity is ever split.
    out: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > TELEGRAM_LIMIT - 2:
            out.append("…")
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)
