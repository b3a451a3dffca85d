"""How a feed client reaches the exchange, and how patient it is with it."""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.feed.backoff import Backoff


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """How to reach the exchange and how patient to be with it."""

    url: str
    token: str | None = field(default=None, repr=False)
    name: str = "public"
    account: str | None = None
    ping_interval: float = 30.0
    ping_timeout: float = 10.0
    request_timeout: float = 10.0
    connect_timeout: float = 10.0
    stale_timeout: float = 75.0
    healthy_after: float = 10.0
    request_retries: int = 5
    max_frame_bytes: int = 4 * 1024 * 1024
    backoff: Backoff = field(default_factory=Backoff)
