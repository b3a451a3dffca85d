"""Run before every handler: a per-user rate limit, then who the Telegram user is here."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, User

from alerts.bot.context import BotServices
from alerts.services.users import register_telegram_user

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def _sender(event: TelegramObject) -> User | None:
    return event.from_user if isinstance(event, Message | CallbackQuery) else None


def _throttle_key(event: TelegramObject) -> int | None:
    # A person by their user id; a channel's posts (no sender) by the channel's chat id, which
    # is negative and so never a user's.
    user = _sender(event)
    if user is not None:
        return user.id
    return event.chat.id if isinstance(event, Message) else None


class Throttle(BaseMiddleware):
    """At most `per_minute` commands and button presses per user in any minute; the first
    one over the limit is answered with when to try again, the rest are dropped silently."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._recent: dict[int, deque[float]] = {}
        self._warned: set[int] = set()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        key = _throttle_key(event)
        if key is None:
            return await handler(event, data)
        now = self.clock()
        recent = self._recent.setdefault(key, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(self._recent) > 10_000:  # forget the idle, so memory stays bounded
            self._recent = {k: v for k, v in self._recent.items() if v}
        if len(recent) < self.per_minute:
            recent.append(now)
            self._warned.discard(key)
            return await handler(event, data)
        if key not in self._warned:
            self._warned.add(key)
            wait = max(1, int(recent[0] + 60 - now) + 1)
            text = f"Slow down: at most {self.per_minute} commands a minute. Try again in {wait} s."
            if isinstance(event, CallbackQuery):
                await event.answer(text, show_alert=True)
            elif isinstance(event, Message):
                await event.answer(text)
        return None


class Register(BaseMiddleware):
    """Finds (or makes) the service's user for the Telegram user and passes `user_id` to the
    handler; a private chat is linked as their destination the first time it is seen."""

    def __init__(self, services: BotServices, cache: int = 10_000) -> None:
        self.services = services
        self._known: OrderedDict[int, int] = OrderedDict()
        self._cache = cache

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = _sender(event)
        if user is None or user.is_bot:
            return None
        known, data["new_user"] = self._known.get(user.id), False
        if known is None:
            chat = event.chat if isinstance(event, Message) else None
            private = chat is not None and chat.type == "private"
            registered, data["new_user"] = await self.services.write(
                register_telegram_user,
                telegram_user_id=user.id,
                name=user.full_name,
                private_chat=private,
            )
            known = registered
            if private:
                self._known[user.id] = registered
                if len(self._known) > self._cache:
                    self._known.popitem(last=False)
        data["user_id"] = known
        return await handler(event, data)
