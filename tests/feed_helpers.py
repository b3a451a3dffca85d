"""Helpers for feed tests: fast configurations, collectors, and a running client."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from alerts.domain.events import FeedEvent
from alerts.feed import Backoff, FeedClient, FeedConfig

FAST_BACKOFF = Backoff(initial=0.01, maximum=0.05, factor=2, jitter=0.25)


def fast_config(url: str, **overrides: Any) -> FeedConfig:
    """A feed configuration with millisecond backoff and short timeouts, for tests."""
    values: dict[str, Any] = {
        "url": url,
        "backoff": FAST_BACKOFF,
        "ping_interval": 5.0,
        "ping_timeout": 1.0,
        "request_timeout": 2.0,
        "connect_timeout": 2.0,
        "stale_timeout": 10.0,
        "healthy_after": 60.0,
    }
    values.update(overrides)
    return FeedConfig(**values)


class Collector:
    """A sink that keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[FeedEvent] = []

    def __call__(self, event: FeedEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        """The events of one type, in arrival order."""
        return [e for e in self.events if isinstance(e, kind)]


async def eventually(
    predicate: Callable[[], bool], timeout: float = 5.0, message: str = "condition"
) -> None:
    """Wait until `predicate()` holds, polling quickly; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} did not happen within {timeout}s")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(client: FeedClient) -> AsyncIterator[asyncio.Task[None]]:
    """Run `client` in the background for the duration of the block, then stop it."""
    task = asyncio.create_task(client.run())
    try:
        yield task
    finally:
        await client.stop()
        if not task.done():
            await asyncio.wait_for(task, 5)
