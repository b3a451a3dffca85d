"""The send stage's one interface: a `Notifier` per destination kind, in a registry the worker
looks kinds up in. Each turns a delivery and its rendered message into one attempt that
returns when sent or raises `SendFailed` saying what to do next (retry, when; give up;
disable the destination; move to a new chat), so that the worker has no branch per kind.
Telegram, Apprise and webhooks are here; a new kind is a new notifier and an entry."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any, Protocol

from alerts.db.queue import Job
from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.webhook import WebhookNotifier
from alerts.delivery.webhook_body import encode, event_object, render_body, signature
from alerts.security import SecretBox, SecretsUnavailable, UndecryptableSecret


class Notifier(Protocol):
    """Sends to the destinations of one kind."""

    # Whether what a mute or quiet hours held back goes as one summary per destination (for
    # people), or each delivery alone (for programs).
    groups_held: bool

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

    groups_held = True

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


class Opened:
    """Secrets of recent destinations (URLs, signing secrets) by their sealed form (a new one
    for each change): opening one costs ~0.1 ms of CPU, a third of the worker's own per send.
    The notifiers keep what they make of a URL (a plugin, a connection), so it is in memory
    already."""

    def __init__(self, box: SecretBox, what: str, cache: int = 1024) -> None:
        self.box = box
        self.what = what
        self._opened: OrderedDict[str, str] = OrderedDict()
        self._cache = cache

    def __call__(self, sealed: str) -> str:
        value = self._opened.get(sealed)
        if value is not None:
            self._opened.move_to_end(sealed)
            return value
        try:
            value = self._opened[sealed] = self.box.open(sealed)
        except (SecretsUnavailable, UndecryptableSecret):
            reason = f"the {self.what} cannot be decrypted (ALERTS_SECRET_KEY changed?)"
            raise SendFailed(reason, retry=False) from None
        if len(self._opened) > self._cache:
            self._opened.popitem(last=False)
        return value


class AppriseUrls:
    """Apprise: each delivery at once, to the URL sealed in its destination."""

    groups_held = True

    def __init__(self, apprise: AppriseNotifier, box: SecretBox) -> None:
        self.apprise = apprise
        self._open = Opened(box, "Apprise URL")

    def in_order(self, job: Job) -> Hashable | None:
        return None

    async def send(self, job: Job, message: Message) -> None:
        if job.url_sealed is None:
            raise SendFailed("the destination has no address", retry=False)
        await self.apprise.send(self._open(job.url_sealed), message)

    def has_gone_out(self, task: asyncio.Task[Any]) -> bool:
        return self.apprise.has_gone_out(task)


class Webhooks:
    """Webhooks: each delivery at once and alone (a held one too: a program reads it, and each
    has its own `Idempotency-Key`), its body the event object or the destination's template,
    signed with the destination's secret if it has one."""

    groups_held = False

    def __init__(self, webhooks: WebhookNotifier, box: SecretBox) -> None:
        self.webhooks = webhooks
        self._url = Opened(box, "webhook URL")
        self._secret = Opened(box, "webhook secret")

    def in_order(self, job: Job) -> Hashable | None:
        return None

    async def send(self, job: Job, message: Message) -> None:
        if job.url_sealed is None:
            raise SendFailed("the destination has no address", retry=False)
        url = self._url(job.url_sealed)
        body = encode(webhook_body(job))
        headers = {"Idempotency-Key": str(job.delivery_id), "X-Alerts-Event": str(job.event_id)}
        if job.secret_sealed is not None:
            secret = self._secret(job.secret_sealed)
            headers["X-Alerts-Signature"] = signature(secret, int(time.time()), body)
        await self.webhooks.post(url, body, headers)

    def has_gone_out(self, task: asyncio.Task[Any]) -> bool:
        return self.webhooks.has_gone_out(task)


def webhook_body(job: Job) -> Any:
    """What a webhook delivery POSTs: the destination's template rendered, or the event."""
    fired_at = job.fired_at.isoformat()
    late = bool(job.after_gap or job.values.get("late"))
    if job.body is not None:
        values = {k: str(v) for k, v in job.values.items() if v is not None}
        values.setdefault("rule", job.rule_name)
        values.setdefault("kind", job.event_kind)
        if job.symbol:
            values.setdefault("symbol", job.symbol)
        ids = {"event_id": job.event_id, "delivery_id": job.delivery_id, "rule_id": job.rule_id}
        values.update({k: str(v) for k, v in ids.items() if v is not None})
        values["fired_at"] = fired_at
        return render_body(job.body, values)
    return event_object(
        event_id=job.event_id,
        delivery_id=job.delivery_id,
        rule_id=job.rule_id,
        rule_name=job.rule_name,
        kind=job.event_kind,
        symbol=job.symbol,
        values=job.values,
        fired_at=fired_at,
        late=late,
        test=job.test,
        held=job.held,
        fallback=job.fallback,
    )


def registry(
    telegram: TelegramNotifier | None,
    apprise: AppriseNotifier,
    webhooks: WebhookNotifier,
    box: SecretBox,
) -> Mapping[str, Notifier]:
    """The notifier of each destination kind."""
    return {
        "telegram": TelegramChats(telegram),
        "apprise": AppriseUrls(apprise, box),
        "webhook": Webhooks(webhooks, box),
    }
