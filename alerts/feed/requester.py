"""Requests on the socket, each matched to its answer by id.

Ids are numbered per client, not per connection, so a late answer from a dropped
connection can never settle a request sent on the next one.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from alerts.feed import protocol
from alerts.feed.config import FeedConfig
from alerts.feed.errors import ConnectionLost, RequestTimeout, RetryLater, error_from_wire


class Requester:
    """Sends requests, settles each with its answer, and fails the unanswered on a drop."""

    def __init__(
        self, config: FeedConfig, rng: random.Random, redact: Callable[[str], str]
    ) -> None:
        self.config = config
        self._rng = rng
        self._redact = redact
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)

    async def request(
        self,
        ws: ClientConnection,
        method: str,
        params: dict[str, Any] | None,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Send a request and await its answer, backing off on transient refusals."""
        retries = self.config.request_retries
        for attempt in itertools.count():
            try:
                return await self._request_once(ws, method, params, timeout)
            except RetryLater:
                if attempt >= retries:
                    raise
                await asyncio.sleep(self.config.backoff.delay(attempt, self._rng))
        raise AssertionError("unreachable")

    async def _request_once(
        self,
        ws: ClientConnection,
        method: str,
        params: dict[str, Any] | None,
        timeout: float | None,
    ) -> Any:
        request_id = str(next(self._ids))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        limit = timeout if timeout is not None else self.config.request_timeout
        try:
            await ws.send(protocol.encode_request(request_id, method, params))
            return await asyncio.wait_for(future, limit)
        except TimeoutError:
            raise RequestTimeout(f"no answer to {method} within {limit:g}s") from None
        except ConnectionClosed as exc:
            raise ConnectionLost(f"connection closed during {method}") from exc
        finally:
            self._pending.pop(request_id, None)

    def answer(self, message: dict[str, Any]) -> bool:
        """Settle the request `message` answers; False when none is waiting for it."""
        future = self._pending.get(str(message.get("id")))
        if future is None or future.done():
            return False
        error = message.get("error")
        if error is not None:
            future.set_exception(error_from_wire(error, redact=self._redact))
        else:
            future.set_result(message.get("result"))
        return True

    def fail_all(self) -> None:
        """Fail every request still waiting: the connection it was sent on is gone."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionLost("connection closed"))
                future.exception()  # retrieved here, so no "never retrieved" warnings
        self._pending.clear()
