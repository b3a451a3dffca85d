"""Incoming frames: pushes parsed and handed to the sink, answers handed to their requests,
and everything else counted, so no frame can end the connection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from alerts.domain.events import BalanceUpdate, FeedEvent
from alerts.feed import protocol
from alerts.feed.config import FeedConfig
from alerts.feed.protocol import PayloadError
from alerts.feed.state import UNKNOWN_CHANNEL, ChannelStats, FeedState

logger = logging.getLogger("alerts.feed")

Sink = Callable[[FeedEvent], None]

_WARN_EVERY = 60.0  # per channel and reason


class Inbound:
    """Turns each frame into events for the sink or an answer for a request; counts the rest."""

    def __init__(
        self,
        config: FeedConfig,
        state: FeedState,
        sink: Sink,
        answer: Callable[[dict[str, Any]], bool],
    ) -> None:
        self.config = config
        self.state = state
        self._sink = sink
        self._answer = answer
        self._fresh_balances = False
        self._stats: dict[str, ChannelStats] = {
            name: state.channel(name) for name in (*protocol.CHANNELS, UNKNOWN_CHANNEL)
        }
        self._warned_at: dict[tuple[str, str], float] = {}

    def expect_full_balances(self) -> None:
        """Mark the next balances push as the full set: it is the first after subscribing."""
        self._fresh_balances = True

    def on_frame(self, raw: str | bytes) -> None:
        """Handle one frame as it came off the socket."""
        self.state.last_message_monotonic = time.monotonic()
        fast = protocol.parse_fast(raw)
        if fast is not None:
            channel, events = fast
            stats = self._stats[channel]
            stats.pushes += 1
            stats.events += len(events)
            self._deliver(channel, events)
            return
        try:
            message = protocol.decode_frame(raw)
        except ValueError:
            self.state.invalid_frames += 1
            self._warn(UNKNOWN_CHANNEL, "frame is not valid JSON", self.state.invalid_frames)
            return
        if type(message) is dict:
            method = message.get("method")
            if method == protocol.PUSH_METHOD:
                self._on_push(message.get("params"))
                return
            if method is None and "id" in message:
                if not self._answer(message):
                    self.state.ignored_messages += 1  # late, or never asked
                return
        self.state.ignored_messages += 1
        logger.debug("%s: ignored a message that is neither answer nor push", self.config.name)

    def _on_push(self, params: Any) -> None:
        named = params.get("channel") if type(params) is dict else None
        channel = named if type(named) is str and named in self._stats else UNKNOWN_CHANNEL
        stats = self._stats[channel]
        stats.pushes += 1
        refused: list[str] = []
        try:
            events = protocol.parse_push(params, self.config.account, refused)
        except PayloadError as exc:
            refused.append(exc.reason)
            events = []
        for reason in refused:
            self._warn(channel, reason, stats.refuse(reason))
        if not events:
            if refused:
                stats.unparseable += 1
            return
        stats.events += len(events)
        self._deliver(channel, events)

    def _deliver(self, channel: str, events: list[FeedEvent]) -> None:
        sink = self._sink
        for event in events:
            if self._fresh_balances and type(event) is BalanceUpdate:
                self._fresh_balances = False
                event = msgspec.structs.replace(event, full=True)
            try:
                sink(event)
            except Exception:
                # Safe to carry on: the failure is the consumer's, and costs it this one event;
                # the socket, the parser and the subscriptions are untouched by it. Raising
                # would end the reader and cut every subscription off until a reconnect.
                self.state.sink_errors += 1
                logger.exception(
                    "%s: event consumer failed on a %s push (%s %s); skipped that event",
                    self.config.name,
                    channel,
                    type(event).__name__,
                    _subject(event),
                )

    def _warn(self, channel: str, reason: str, count: int) -> None:
        """Log a refused push or element, at most once a minute per channel and reason."""
        now, key = time.monotonic(), (channel, reason)
        if now - self._warned_at.get(key, -_WARN_EVERY) >= _WARN_EVERY:
            self._warned_at[key] = now
            logger.warning(
                "%s: refused a %s push (%s); %d so far", self.config.name, channel, reason, count
            )


def _subject(event: FeedEvent) -> str:
    """What an event is about, for a log line: its symbol, else its account."""
    symbol = getattr(event, "symbol", None)
    if symbol is not None:
        return str(symbol)
    return f"account {getattr(event, 'account', None)}"
