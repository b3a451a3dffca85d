"""Parsing what users type after a command: pure functions, each error a short explanation
with a correct example."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

MAX_MUTE = timedelta(days=30)
_DURATION = re.compile(r"([0-9]{1,6})\s*(s|sec|m|min|h|hr|d|day|w)s?", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400}
_UNITS["w"] = 7 * 86400
ALERT_EXAMPLES = "/alert BTC-USDT above 70000\n/alert TON-USDT change 5% 1h"


class BadInput(ValueError):
    """What the user typed cannot be used; the message says why and shows an example."""


def parse_duration(text: str, *, limit: timedelta = MAX_MUTE) -> timedelta:
    """ "90s", "15m", "1h", "2d", "1w" or combinations like "1h30m"."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts).lower() != compact.lower():
        raise BadInput(f"'{text.strip()[:20]}' is not a duration: try 30m, 1h, 2d or 1h30m")
    seconds = sum(int(n) * _UNITS[u.lower()] for n, u in parts)
    if seconds <= 0:
        raise BadInput("the duration must be longer than zero, like 30m or 1h")
    if seconds > limit.total_seconds():
        raise BadInput(f"at most {limit.days} days at a time")
    return timedelta(seconds=seconds)


def parse_alert(args: str | None) -> dict[str, Any]:
    """The rule `/alert` asks for: a `price_cross` for above/below, a `percent_change`
    for change; the dict is validated by the rules service like a REST request body."""
    words = (args or "").split()
    if len(words) < 3:
        raise BadInput(f"say which symbol, and when. For example:\n{ALERT_EXAMPLES}")
    symbol, verb, rest = words[0].upper(), words[1].lower(), words[2:]
    if verb in ("above", "below"):
        if len(rest) != 1:
            raise BadInput(f"give one price after '{verb}', like /alert {symbol} {verb} 70000")
        price = rest[0].replace(",", "")
        direction = "up" if verb == "above" else "down"
        return {"kind": "price_cross", "symbol": symbol, "level": price, "direction": direction}
    if verb == "change":
        if len(rest) != 2 or not rest[0].endswith("%"):
            raise BadInput(f"say by how much and within what time: /alert {symbol} change 5% 1h")
        window = parse_duration(rest[1], limit=timedelta(days=7))
        return {
            "kind": "percent_change",
            "symbol": symbol,
            "percent": rest[0].rstrip("%"),
            "window_seconds": int(window.total_seconds()),
        }
    raise BadInput(f"use above, below or change after the symbol. For example:\n{ALERT_EXAMPLES}")


def parse_switch(args: str | None, what: str) -> bool:
    """ "on" or "off"."""
    word = (args or "").strip().lower()
    if word not in ("on", "off"):
        raise BadInput(f"say on or off: /{what} on")
    return word == "on"


MAX_ID = 2**31 - 1
_ID = re.compile(r"#?([0-9]{1,10})")


def parse_id(args: str | None, command: str) -> int:
    """A rule id like "12" or "#12"."""
    match = _ID.fullmatch((args or "").strip())
    if match is None or not 0 < int(match.group(1)) <= MAX_ID:
        raise BadInput(f"give the alert's number, as /alerts shows it: /{command} 12")
    return int(match.group(1))


def valid_id(value: int) -> bool:
    """Whether `value` can be a stored id (a forged button may carry any integer)."""
    return 0 < value <= MAX_ID
