"""Webhook destinations: one JSON POST per delivery on aiohttp, through one pool of kept-alive
connections, signed when the destination has a secret (see `webhook_body`).

Headers: `Idempotency-Key` (the delivery's id, the same on every retry, so a receiver can tell
a retry from a new alert), `X-Alerts-Event` (the event's id) and, with a secret,
`X-Alerts-Signature`. A 2xx answer is delivered; 408, 429 and 5xx are retried, after the
`Retry-After` the receiver asked for (seconds or an HTTP date, at most an hour) or the
worker's capped, jittered backoff; a redirect or any other 4xx is dead at once (a webhook's
URL must be its final one: following a redirect would send the body where the user did not
say). A connection that fails or a receiver that does not answer within the timeout is
retried.

Every connection is checked by the address guard (`address_guard.guarded`, on this task
alone): a webhook reaches no loopback, private or otherwise special address unless the
operator allows private targets. Environment proxies are not used.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

from alerts.delivery.address_guard import guarded
from alerts.delivery.apprise_notifier import ADDRESS_NOT_ALLOWED
from alerts.delivery.errors import SendFailed

MAX_RETRY_AFTER = 3600.0
_RETRIED = frozenset({408, 429})
_DRAIN = 64 * 1024  # answer bytes read (and dropped) so the connection can be kept


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` header asks for (delay-seconds or an HTTP date), at most an
    hour; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            at = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        seconds = at.timestamp() - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def outcome_of(status: int, headers: Mapping[str, str], now: float) -> SendFailed | None:
    """None when delivered; otherwise what to do about the answer."""
    if 200 <= status < 300:
        return None
    reason = f"HTTP {status}"
    if status in _RETRIED or status >= 500:
        wait = retry_after(headers.get("Retry-After"), now)
        return SendFailed(reason, retry=True, retry_after=wait)
    if 300 <= status < 400:
        reason += " (a redirect: give the webhook's final URL)"
    return SendFailed(reason, retry=False)


class WebhookNotifier:
    """POSTs webhook bodies; one connection pool for all of them, made on first use."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = 10.0,
        connections: int = 100,
        per_host: int = 32,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.connections = connections
        self.per_host = per_host
        self._session: aiohttp.ClientSession | None = None
        self._started: set[asyncio.Task[Any]] = set()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.connections, limit_per_host=self.per_host)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,  # no environment proxy: the guard checks the real target
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "xrocket-alerts-webhook"},
            )
        return self._session

    def has_gone_out(self, task: asyncio.Task[Any]) -> bool:
        """Whether `task`'s request has started (it may have reached the receiver)."""
        return task in self._started

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        """One attempt: return once a 2xx came back, or raise `SendFailed`."""
        session = self._client()
        task = asyncio.current_task()
        send_headers = {"Content-Type": "application/json", **headers}
        try:
            with guarded(allow_private=self.allow_private) as guard:
                if task is not None:
                    self._started.add(task)
                try:
                    async with session.post(
                        url, data=body, headers=send_headers, allow_redirects=False
                    ) as answer:
                        await answer.content.read(_DRAIN)
                        failed = outcome_of(answer.status, answer.headers, time.time())
                except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
                    raise SendFailed("timed out", retry=True) from None
                except (aiohttp.ClientError, OSError) as exc:
                    if guard.refused:
                        raise SendFailed(ADDRESS_NOT_ALLOWED, retry=False) from None
                    if isinstance(exc, aiohttp.InvalidURL):
                        raise SendFailed("the URL is not valid", retry=False) from None
                    raise SendFailed(_connection_failure(exc), retry=True) from None
        finally:
            self._started.discard(task)
        if failed is not None:
            raise failed

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _connection_failure(exc: BaseException) -> str:
    """A coarse reason: never the URL, which may hold a secret."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the receiver closed the connection"
    return "connection failed"
