"""The exchange's REST API (`XROCKET_API_URL`), for what a WebSocket cannot tell: the orders
an account closed while its connection was down.

One aiohttp session; every request has a timeout. A timeout, a dropped connection or a 5xx
is retried with capped, jittered backoff; a 429 waits for its `Retry-After` (capped); an
answer that cannot be read is retried the same way; a refusal (bad token, bad parameters)
is raised at once, as what it is. The shapes of the answers live in the protocol module,
with the channels'.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aiohttp

from alerts.domain.events import Order
from alerts.feed import protocol
from alerts.feed.backoff import Backoff
from alerts.feed.errors import ExchangeError, FeedError, RetryLater
from alerts.feed.protocol import PayloadError

logger = logging.getLogger("alerts.feed")

MAX_PAGES = 100  # of HISTORY_LIMIT orders each: a gap of more is read on the next try
MAX_RETRY_AFTER = 60.0


class RestUnavailable(FeedError):
    """The REST API did not answer usefully after every retry; try again later."""


class ExchangeRest:
    """A client of the exchange's REST API."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff or Backoff(initial=0.5, maximum=30.0, factor=2.0, jitter=0.25)
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def order_history(self, token: str, account: str, start_ms: int) -> list[Order]:
        """The account's orders closed (filled, canceled, ...) from `start_ms` on, oldest
        first, every page of them."""
        orders: list[Order] = []
        seen: set[tuple[str, str, int | None]] = set()
        start = start_ms
        for _ in range(MAX_PAGES):
            data = await self.get(protocol.ORDERS_HISTORY, protocol.history_params(start), token)
            refused: list[str] = []
            page = protocol.parse_orders(data, account, refused)
            if refused:
                logger.warning(
                    "account %s: %d order(s) of the history refused (%s)",
                    account,
                    len(refused),
                    refused[0],
                )
            # A page starts at the newest time of the last: what shares it comes again.
            for order in page:
                key = (order.order_id, order.status.value, order.updated_at)
                if key not in seen:
                    seen.add(key)
                    orders.append(order)
            count = len(data) if isinstance(data, list) else 1
            if count < protocol.HISTORY_LIMIT:
                return orders
            newest = max((o.updated_at or start for o in page), default=start)
            # A full page all from one millisecond: step past it rather than ask again.
            start = newest if newest > start else start + 1
        return orders

    async def get(self, path: str, params: dict[str, str], token: str | None = None) -> Any:
        """The `data` of one GET, retried as the module says."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            try:
                return await self._get_once(url, params, headers)
            except (RetryLater, aiohttp.ClientError, TimeoutError) as exc:
                if attempt >= self.retries:
                    raise RestUnavailable(f"{path}: {_reason(exc)}") from None
                wait = exc.retry_after if isinstance(exc, _Busy) else None
                delay = wait if wait is not None else self.backoff.delay(attempt, self._rng)
                logger.info("%s: %s; retrying in %.1f s", path, _reason(exc), delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _get_once(self, url: str, params: dict[str, str], headers: dict[str, str]) -> Any:
        session = self._session
        if session is None or session.closed:
            session = self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with session.get(url, params=params, headers=headers, timeout=timeout) as r:
            body = await r.read()
            if r.status == 429:
                raise _Busy(_retry_after(r.headers.get("Retry-After")))
            if r.status >= 500:
                raise RetryLater(f"HTTP {r.status}")
            try:
                return protocol.parse_answer(body)
            except PayloadError as exc:
                if r.status >= 400:
                    raise ExchangeError(f"HTTP {r.status}", code=0) from None
                # A proxy's page, a cut-off body: worth another try, like a 5xx.
                raise RetryLater(f"unreadable answer ({exc.reason})") from None


class _Busy(RetryLater):
    """A 429: wait `retry_after` seconds (when the exchange said) before trying again."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__("HTTP 429", code=-32050)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not 0 <= seconds < float("inf"):
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ExchangeError):
        return exc.message
    return type(exc).__name__
