"""Every other destination through Apprise: bounded concurrency, a timeout per call, the
outcome mapped to retry or not, and the reason taken from Apprise's own log (scrubbed).

Each URL is one Apprise plugin object (`Apprise.instantiate`), and a send is a call of its
blocking `notify()` in a thread, one per send in flight: in helper processes (the service's
default, `ALERTS_APPRISE_PROCESSES`; see `alerts.delivery.apprise_processes`) or in a thread
pool of this process (`alerts.delivery.apprise_calls` is what either thread runs).

We do not go through `Apprise.async_notify`: it fans a message out to many services (tags,
priorities, escalation, a log capture per call) where we always have one, and it runs every
plugin in Apprise's process-wide pool of `cpu_count + 4` threads, so that no more than 6 sends
were in flight on two cores whatever our own bound said. With a local json:// receiver that
layer cost 0.3-0.5 ms of CPU per send, against ~0.9 ms for the plugin's own HTTP request. Two
per-URL options live in that layer: `emojis=yes` is applied here; `retry=N` is not, as the
worker retries failed sends itself (with backoff, without holding a thread).
"""

from __future__ import annotations

import asyncio
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from alerts.delivery.apprise_calls import Plugins, Result, notify
from alerts.delivery.apprise_processes import HelperGone, ProcessPool
from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message

logger = logging.getLogger("alerts.delivery.apprise")
# Apprise's plugins end a failed request's warning with "error=<HTTP status>." (a bare number
# would also match the parts of an address like 127.0.0.1).
_HTTP_STATUS = re.compile(r"\berror=([1-5][0-9][0-9])\b")


def _secrets_of(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    pieces = [url, parts.password or "", parts.username or "", parts.query]
    pieces += [p for p in re.split(r"[/:@?&=]", parts.netloc + parts.path + "/" + parts.query)]
    return sorted({p for p in pieces if len(p) >= 4}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` with every part of `url` that may be a secret replaced by ***."""
    for piece in _secrets_of(url):
        text = text.replace(piece, "***")
    return text


ADDRESS_NOT_ALLOWED = "address not allowed"
_TIMEOUT_WORDS = ("timed out", "timeout", "time out")


def failure_category(detail: list[str], codes: list[int]) -> str:
    """What a user is told of a failed send: `HTTP 404`, `timed out` or `connection failed`."""
    if codes:
        return f"HTTP {codes[-1]}"
    text = " ".join(detail).lower()
    if any(word in text for word in _TIMEOUT_WORDS):
        return "timed out"
    return "connection failed"


class AppriseNotifier:
    """Sends alert messages to Apprise URLs: in threads of this process, or with `processes`
    in that many helper processes (`alerts.delivery.apprise_processes`)."""

    def __init__(
        self,
        *,
        concurrency: int = 32,
        timeout: float = 15.0,
        cache: int = 1024,
        processes: int = 0,
        allow_private: bool = False,
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._slots = asyncio.Semaphore(concurrency)
        # Plugins block (requests, smtplib…): each send in flight holds a thread. Threads are
        # started on demand, so an idle notifier costs none; so are helper processes.
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="apprise")
        self._plugins = Plugins(cache)
        self._processes = (
            ProcessPool(processes, concurrency, allow_private=allow_private)
            if processes > 0
            else None
        )
        self._running: set[asyncio.Task[Any]] = set()

    def has_gone_out(self, task: asyncio.Task[Any]) -> bool:
        """Whether the send that `task` is making has started (its plugin running in a
        thread, which cannot be stopped): until then, cancelling it sends nothing."""
        return task in self._running

    async def send(self, url: str, message: Message) -> None:
        """Send one message or raise `SendFailed` saying what to do next."""
        status, detail = await self._call(url, message.text, message.title)
        if status == "sent":
            return
        if status == "refused":
            raise SendFailed(ADDRESS_NOT_ALLOWED, retry=False)
        if status == "unusable":
            raise SendFailed("Apprise cannot use this URL", retry=False)
        if status == "crashed":
            # Apprise turns a crashing plugin into a failed send; so do we.
            logger.info("an Apprise plugin raised %s", detail[0])
            raise SendFailed("the notification service's plugin failed", retry=True)
        # The reason a user reads is a coarse category: Apprise's own words name hosts, paths
        # and internals, which would let a user map the network. The operator's log has them.
        logger.info("Apprise send failed: %s", scrub(detail[-1] if detail else "no reason", url))
        codes = [int(c) for p in detail for c in _HTTP_STATUS.findall(p)]
        permanent = any(400 <= c < 500 and c not in (408, 425, 429) for c in codes)
        raise SendFailed(failure_category(detail, codes), retry=not permanent)

    async def close(self) -> None:
        """End the helper processes (after their sends in flight) and the idle threads."""
        if self._processes is not None:
            await self._processes.close()
        self._pool.shutdown(wait=False)

    async def _call(self, url: str, body: str, title: str) -> Result:
        await self._slots.acquire()
        try:
            future = await self._start(url, body, title)
        except BaseException:
            self._slots.release()
            raise
        # A send cannot be stopped once it runs: one that outlives its timeout (or our task)
        # keeps its slot until the plugin's own socket timeouts end it, so that no more than
        # `concurrency` sends ever run.
        future.add_done_callback(lambda _: self._slots.release())
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            raise SendFailed(
                f"timed out (no answer within {self.timeout:g} s)", retry=True
            ) from None
        except HelperGone:
            raise SendFailed(_GONE, retry=True) from None
        finally:
            self._running.discard(task)

    async def _start(self, url: str, body: str, title: str) -> asyncio.Future[Result]:
        if self._processes is None:
            call = partial(
                notify, self._plugins, url, body, title, allow_private=self.allow_private
            )
            return asyncio.wrap_future(self._pool.submit(call))
        try:
            return await self._processes.call(url, body, title)
        except (HelperGone, OSError):
            raise SendFailed(_GONE, retry=True) from None


_GONE = "the Apprise helper process stopped before it answered"
