"""Every other destination through Apprise: bounded concurrency, a timeout per call, the
outcome mapped to retry or not, and the reason taken from Apprise's own log (scrubbed)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import OrderedDict
from urllib.parse import urlsplit

import apprise
from apprise.result import AppriseResultStatus

from alerts.delivery.apprise_urls import captured_apprise_logs
from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message

logger = logging.getLogger("alerts.delivery.apprise")
_HTTP_STATUS = re.compile(r"\b([1-5]\d\d)\b")


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


class AppriseNotifier:
    """Sends alert messages to Apprise URLs."""

    def __init__(self, *, concurrency: int = 32, timeout: float = 15.0, cache: int = 1024) -> None:
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._clients: OrderedDict[str, apprise.Apprise] = OrderedDict()
        self._cache = cache

    def _client(self, url: str) -> apprise.Apprise | None:
        # Parsing a URL into a plugin costs more than many sends: keep recent ones.
        client = self._clients.get(url)
        if client is not None:
            self._clients.move_to_end(url)
            return client
        client = apprise.Apprise()
        if not client.add(url):
            return None
        self._clients[url] = client
        if len(self._clients) > self._cache:
            self._clients.popitem(last=False)
        return client

    async def send(self, url: str, message: Message) -> None:
        """Send one message or raise `SendFailed` saying what to do next."""
        with captured_apprise_logs() as records:
            client = self._client(url)
            if client is None:
                raise SendFailed("Apprise cannot use this URL", retry=False)
            async with self._slots:
                try:
                    result = await asyncio.wait_for(
                        client.async_notify(body=message.text, title=message.title), self.timeout
                    )
                except TimeoutError:
                    raise SendFailed(f"no answer within {self.timeout:g} s", retry=True) from None
        status = getattr(result, "status", AppriseResultStatus.SUCCESS if result else None)
        if status == AppriseResultStatus.SUCCESS:
            return
        problems = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
        reason = scrub(problems[-1] if problems else f"Apprise reported {status!r}", url)
        if status == AppriseResultStatus.TIMEOUT:
            raise SendFailed(reason, retry=True)
        if status == AppriseResultStatus.NOMATCH:
            raise SendFailed(reason, retry=False)
        codes = {int(c) for p in problems for c in _HTTP_STATUS.findall(p)}
        permanent = any(400 <= c < 500 and c not in (408, 425, 429) for c in codes)
        raise SendFailed(reason, retry=not permanent)
