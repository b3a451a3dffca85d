"""How a delivery worker paces itself, when it gives up, and what it does besides sending."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from alerts.feed.backoff import Backoff


@dataclass
class WorkerConfig:
    """How the worker paces itself and when it gives up."""

    poll_interval: float = 0.5
    batch: int = 200
    lease: timedelta = timedelta(seconds=60)
    max_age: timedelta = timedelta(hours=24)
    backoff: Backoff = field(
        default_factory=lambda: Backoff(initial=5.0, maximum=900.0, factor=2.0, jitter=0.2)
    )
    flood_threshold: int = 5
    record_batch: int = 20
    record_interval: float = 0.1
    listen: bool = True  # on PostgreSQL, wake on other processes' NOTIFY
    # One worker per bot sends Telegram's deliveries (see `alerts.delivery.upkeep`); without
    # the election, as in a one-off `run_once`, this worker sends them all.
    elect_telegram_sender: bool = True
    election_interval: float = 1.0
    # Events (and their deliveries) older than `retention` are pruned every `prune_interval`
    # seconds, `prune_batch` at a time with `prune_pause` between batches; None keeps all.
    retention: timedelta | None = timedelta(days=90)
    prune_interval: float = 300.0
    prune_batch: int = 200
    prune_pause: float = 0.05
