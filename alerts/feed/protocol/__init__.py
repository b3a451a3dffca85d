"""Every assumption about xRocket's channels and payloads, in one package.

The published protocol fixes the envelope (requests, responses, pushes); channel
names, parameters and `data` payloads are assumptions (protocol page §2). When
the real payloads are observed, this package is the one to edit, and only it:
callers import from `alerts.feed.protocol`, never from its modules.

- `envelope`: channel names, request methods, `Subscription`, and frames in and
  out (`encode_request`, `decode_frame`).
- `values`: bounded readers of one field each, and `PayloadError`.
- `payloads`: the tolerant parser of each channel (`parse_push`) and of the
  REST order history (`history_params`, `parse_answer`, `parse_orders`).
- `fast`: the msgspec fast path for the busy channels (`parse_fast`); what it
  cannot answer falls back to `payloads`, which has the final word.

Tolerance rules: numbers may be strings or JSON numbers and become `Decimal`
(never binary floats); unknown fields are ignored; missing optional fields are
`None`; a single object where a list is expected, or the reverse, is accepted.
Anything else raises `PayloadError`, which the client counts and skips.

Bounds, because the exchange is not trusted to be sane: a symbol is at most 40 characters of
letters, digits and `-_./`; an id at most 128 characters; a number is finite, not negative,
has at most 40 significant digits and a magnitude within 1e-30..1e30
(`alerts.domain.values.bounded`). A value out of bounds refuses its element (in a list push
the others stand, when the caller collects refusals) with a short, fixed reason; so does
text no database column takes (NUL and other unprintable characters).
"""

from alerts.feed.protocol.envelope import (
    ACTIVE_ORDERS,
    AUTH,
    BALANCES,
    CANDLE_INTERVALS,
    CANDLES,
    CHANNELS,
    DEFAULT_TICKER_INTERVAL,
    ORDERBOOK,
    PING,
    PRIVATE_CHANNELS,
    PUBLIC_CHANNELS,
    PUSH_METHOD,
    SUBSCRIBE,
    TICKER,
    TICKERS,
    TRADES,
    UNSUBSCRIBE,
    UNSUBSCRIBE_ALL,
    Subscription,
    decode_frame,
    encode_request,
)
from alerts.feed.protocol.fast import parse_fast
from alerts.feed.protocol.payloads import (
    HISTORY_LIMIT,
    ORDERS_HISTORY,
    history_params,
    parse_answer,
    parse_orders,
    parse_push,
)
from alerts.feed.protocol.values import MAX_ID, MAX_SYMBOL, PayloadError, millis, symbol_ok

__all__ = [
    "ACTIVE_ORDERS",
    "AUTH",
    "BALANCES",
    "CANDLES",
    "CANDLE_INTERVALS",
    "CHANNELS",
    "DEFAULT_TICKER_INTERVAL",
    "HISTORY_LIMIT",
    "MAX_ID",
    "MAX_SYMBOL",
    "ORDERBOOK",
    "ORDERS_HISTORY",
    "PING",
    "PRIVATE_CHANNELS",
    "PUBLIC_CHANNELS",
    "PUSH_METHOD",
    "SUBSCRIBE",
    "TICKER",
    "TICKERS",
    "TRADES",
    "UNSUBSCRIBE",
    "UNSUBSCRIBE_ALL",
    "PayloadError",
    "Subscription",
    "decode_frame",
    "encode_request",
    "history_params",
    "millis",
    "parse_answer",
    "parse_fast",
    "parse_orders",
    "parse_push",
    "symbol_ok",
]
