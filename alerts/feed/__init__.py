"""The xRocket connection: socket, keep-alive, reconnects, and frame parsing."""

from alerts.feed.backoff import Backoff
from alerts.feed.client import FeedClient, FeedConfig
from alerts.feed.errors import (
    AuthRejected,
    ConnectionLost,
    ExchangeError,
    FeedError,
    InvalidToken,
    RateLimited,
    RequestRejected,
    RequestTimeout,
    UserBlocked,
)
from alerts.feed.protocol import Subscription
from alerts.feed.state import ChannelStats, FeedState

__all__ = [
    "AuthRejected",
    "Backoff",
    "ChannelStats",
    "ConnectionLost",
    "ExchangeError",
    "FeedClient",
    "FeedConfig",
    "FeedError",
    "FeedState",
    "InvalidToken",
    "RateLimited",
    "RequestRejected",
    "RequestTimeout",
    "Subscription",
    "UserBlocked",
]
