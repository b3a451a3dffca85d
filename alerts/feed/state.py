"""Observable state of one feed connection, for health checks and metrics."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from alerts.feed.errors import ExchangeError

UNKNOWN_CHANNEL = "unknown"


@dataclass(slots=True)
class ChannelStats:
    """Counters of one channel: `unparseable` counts pushes that gave no event at all,
    `refused` each push or list element refused, by reason."""

    pushes: int = 0
    events: int = 0
    unparseable: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def refuse(self, reason: str) -> int:
        """Count one refusal; how many of that reason so far."""
        count = self.refused[reason] = self.refused.get(reason, 0) + 1
        return count


@dataclass(slots=True)
class FeedState:
    """What a feed client is doing now and has done so far."""

    name: str = "public"
    connected: bool = False
    ready: bool = False
    connected_at: datetime | None = None
    last_message_monotonic: float | None = None
    attempts: int = 0
    connects: int = 0
    pings_sent: int = 0
    pongs_received: int = 0
    ignored_messages: int = 0
    invalid_frames: int = 0
    sink_errors: int = 0
    last_error: str | None = None
    fatal_error: ExchangeError | None = None
    channels: dict[str, ChannelStats] = field(default_factory=dict)
    failed_subscriptions: dict[str, str] = field(default_factory=dict)
    recent_delays: deque[float] = field(default_factory=lambda: deque(maxlen=256))

    @property
    def reconnects(self) -> int:
        """Connections made after the first one."""
        return max(self.connects - 1, 0)

    @property
    def last_message_age(self) -> float | None:
        """Seconds since the last frame of any kind arrived, or None before the first."""
        if self.last_message_monotonic is None:
            return None
        return time.monotonic() - self.last_message_monotonic

    @property
    def last_message_at(self) -> datetime | None:
        """Wall-clock time of the last frame, or None before the first."""
        age = self.last_message_age
        return None if age is None else datetime.now(UTC) - timedelta(seconds=age)

    def channel(self, name: str) -> ChannelStats:
        """The counters of `name`, created on first use."""
        stats = self.channels.get(name)
        if stats is None:
            stats = self.channels[name] = ChannelStats()
        return stats

    @property
    def unparseable(self) -> int:
        """Pushes and frames that could not be understood, over all channels."""
        return self.invalid_frames + sum(s.unparseable for s in self.channels.values())
