"""The send stage's one interface: a `Notifier` per destination kind, in a registry the worker
looks kinds up in. Each turns a delivery and its rendered message into one attempt that
returns when sent or raises `SendFailed` saying what to do next (retry, when; give up;
disable the destination; move to a new chat), so that the worker has no branch per kind.
Telegram and Apprise are here; a new kind (webhooks) is a new notifier and an entry."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Protocol

from alerts.db.queue import Job
from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message
from alerts.delivery.telegram import TelegramNotifier
from alerts.security import SecretBox, SecretsUnavailable, UndecryptableSecret


class Notifier(Protocol):
    """Sends to the destinations of one kind."""

    def in_order(self, job: Job) -> Hashable | None:
        """What this delivery's messages must keep their order within (one sender each, one
        message at a time, digests when many are due), or None to send it at once."""
        ...

    async def send(self, job: Job, message: Message) -> None:
        """One attempt: return once sent, or raise `SendFailed`."""
        ...

    def has_gone_out(self, task: asyncio.Task[Any]) -> bool:
        """Whether the send `task` is making has left (cancelling it would not unsend it)."""
        ...


class TelegramChats:
    """Telegram: each chat's messages in order, inside the bot's limits."""

    def __init__(self, telegram: TelegramNotifier | None) -> None:
        self.telegram = telegram

    def in_order(self, job: Job) -> Hashable | None:
        return job.chat_id if job.destination_enabled and job.chat_id else None

    async def send(self, job: Job, message: Message) -> None:
        if self.telegram is None:
            raise SendFailed("Telegram delivery is off (TELEGRAM_BOT_TOKEN is not set)", retry=True)
        if not job.chat_id:
            raise SendFailed("the destination has no address", retry=False)
        await self.telegram.send(job.chat_id, message)

    def has_gone_out(self, task: asyncio.Task[Any]) -> bool:
        return self.telegram is not None and self.telegram.has_gone_out(task)


class AppriseUrls:
    """Apprise: each delivery at once, to the URL sealed in its destination."""

    def __init__(self, apprise: AppriseNotifier, box: SecretBox, cache: int = 1024) -> None:
        self.apprise = apprise
        self.box = box
        # The URLs of recent destinations, by their sealed form (a new one for each change of
        # URL): opening it costs ~0.1 ms of CPU, a third of the worker's own per send. The
        # notifier and its helpers keep each URL's plugin, so it is in memory already.
        self._opened: OrderedDict[str, str] = OrderedDict()
        self._cache = cache

    def in_order(self, job: Job) -> Hashable | None:
        return None

    async def send(self, job: Job, message: Message) -> None:
        if job.url_sealed is None:
            raise SendFailed("the destination has no address", retry=False)
        await self.apprise.send(self._open(job.url_sealed), message)

    def _open(self, sealed: str) -> str:
        url = self._opened.get(sealed)
        if url is not None:
            self._opened.move_to_end(sealed)
            return url
        try:
            url = self._opened[sealed] = self.box.open(sealed)
        except (SecretsUnavailable, UndecryptableSecret):
            reason = "the Apprise URL cannot be decrypted (ALERTS_SECRET_KEY changed?)"
            raise SendFailed(reason, retry=False) from None
        if len(self._opened) > self._cache:
            self._opened.popitem(last=False)
        return url

    def has_gone_out(self, task: asyncio.Task[Any]) -> bool:
        return self.apprise.has_gone_out(task)


def registry(
    telegram: TelegramNotifier | None, apprise: AppriseNotifier, box: SecretBox
) -> Mapping[str, Notifier]:
    """The notifier of each destination kind."""
    return {"telegram": TelegramChats(telegram), "apprise": AppriseUrls(apprise, box)}
