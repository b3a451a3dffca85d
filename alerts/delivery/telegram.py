"""Telegram through aiogram: every Bot API error mapped, in this one place, to retry or not."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import SendMessage
from aiogram.methods.base import Response, TelegramMethod, TelegramType
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from aiogram.types import Message as SentMessage
from aiohttp import FormData
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import BytesPayload, Payload

from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message
from alerts.delivery.ratelimit import RateLimiter

logger = logging.getLogger("alerts.delivery.telegram")

# aiogram parses every answer as `Response[<result type>]`, a class pydantic builds on first
# use and caches only while something else holds it: unheld, it was garbage-collected and
# rebuilt (5-10 ms of CPU) every few sends. Held here, it is built once.
_SEND_RESPONSE = Response[SentMessage]

# Chats that are gone for good: the destination is disabled rather than retried.
_GONE = ("chat not found", "user is deactivated", "bot was kicked", "group chat was deleted")


# Built once, not per send: pydantic validates each aiogram object as it is made (the
# buttons below cost ~20 µs to build), and aiogram only reads them.
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


@functools.lru_cache(maxsize=4096)
def buttons(rule_id: int | None) -> InlineKeyboardMarkup | None:
    """Snooze (1 h) and disable buttons for the rule an alert came from."""
    if rule_id is None:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="Snooze 1 h", callback_data=f"snooze:{rule_id}:3600"),
                InlineKeyboardButton(text="Disable rule", callback_data=f"disable:{rule_id}"),
            ]
        ]
    )


def bot_session(api_url: str | None) -> AiohttpSession:
    """An aiogram session for the official Bot API, or for the server at `api_url`."""
    if api_url:
        return AiohttpSession(api=TelegramAPIServer.from_base(api_url.rstrip("/")))
    return AiohttpSession()


class _PacedBody(BytesPayload):
    """A request body that takes its rate-limit slot (`pace`) as it is written, so that the
    slots the limiter spaces are the times requests reach Telegram. Before Python 3.12
    aiohttp writes a body from a task of its own, on a later turn of the loop: a slot taken
    before the request started was used as late as that turn came, by however long the loop
    was busy (or the process not running), and requests bunched up over the limits."""

    def __init__(self, form: Payload, pace: Callable[[], Awaitable[None]]) -> None:
        super().__init__(form.decode().encode(), content_type=form.content_type)
        self._pace = pace

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self._pace()
        await super().write(writer)

    async def write_with_length(
        self, writer: AbstractStreamWriter, content_length: int | None
    ) -> None:
        await self._pace()
        await super().write_with_length(writer, content_length)


class _PacedForm(FormData):
    """aiogram's form for a message, becoming a `_PacedBody` when aiohttp sends it."""

    def __init__(self, form: FormData, pace: Callable[[], Awaitable[None]]) -> None:
        super().__init__()
        self._form, self._pace = form, pace

    def __call__(self) -> Payload:
        return _PacedBody(self._form(), self._pace)


class _PacedSession(AiohttpSession):
    """An aiogram session whose sendMessage requests take their chat's slot from `limiter`
    as their bytes go out."""

    def __init__(self, limiter: RateLimiter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limiter = limiter

    def build_form_data(self, bot: Bot, method: TelegramMethod[TelegramType]) -> FormData:
        form = super().build_form_data(bot, method)
        if isinstance(method, SendMessage) and isinstance(method.chat_id, int):
            return _PacedForm(form, functools.partial(self.limiter.acquire, method.chat_id))
        return form


class TelegramNotifier:
    """Sends alert messages to chats, inside Telegram's limits."""

    def __init__(
        self,
        token: str,
        *,
        api_url: str | None = None,
        limiter: RateLimiter | None = None,
        timeout: float = 10.0,
        in_flight: int = 16,
    ) -> None:
        self.limiter = limiter or RateLimiter()
        api = {"api": TelegramAPIServer.from_base(api_url.rstrip("/"))} if api_url else {}
        self.bot = Bot(token, session=_PacedSession(self.limiter, **api))
        self.timeout = timeout
        self._token = token
        # A slot is taken from the limiter only as the request goes out (`_PacedBody`): were
        # requests to queue for a connection after taking their slot, they would reach
        # Telegram in bursts and meet 429s although their slots were spaced.
        self._in_flight = asyncio.Semaphore(in_flight)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***")

    async def send(self, chat_id: int, message: Message) -> None:
        """Send one message or raise `SendFailed` saying what to do next."""
        await self.limiter.chat_ready(chat_id)  # a chat that must wait holds no send slot
        async with self._in_flight:
            await self._send(chat_id, message)

    async def _send(self, chat_id: int, message: Message) -> None:
        try:
            # `timeout`, not `wait_for`: wait_for would run the request in a new task, which
            # starts only after everything else ready in the loop; the request would then
            # reach Telegram later than its slot was taken, by however busy the loop is.
            async with asyncio.timeout(self.timeout):
                await self.bot.send_message(
                    chat_id,
                    message.html,
                    parse_mode="HTML",
                    reply_markup=buttons(message.rule_id),
                    link_preview_options=_NO_PREVIEW,
                )
        except TelegramRetryAfter as exc:
            self.limiter.flooded(exc.retry_after, chat_id)
            raise SendFailed(
                f"Telegram asked to wait {exc.retry_after} s",
                retry=True,
                retry_after=exc.retry_after,
            ) from None
        except TelegramMigrateToChat as exc:
            raise SendFailed(
                "the group became a supergroup", retry=True, new_chat_id=exc.migrate_to_chat_id
            ) from None
        except TelegramForbiddenError as exc:
            raise SendFailed(self._scrub(exc.message), retry=False, disable=True) from None
        except TelegramEntityTooLarge as exc:  # a network error by type, but never retryable
            raise SendFailed(self._scrub(exc.message), retry=False) from None
        except (TelegramBadRequest, TelegramNotFound) as exc:
            gone = any(marker in exc.message.lower() for marker in _GONE)
            raise SendFailed(self._scrub(exc.message), retry=False, disable=gone) from None
        except TelegramUnauthorizedError:
            raise SendFailed(
                "Telegram refused the bot token (check TELEGRAM_BOT_TOKEN)", retry=True
            ) from None
        except (TelegramServerError, TelegramNetworkError) as exc:
            raise SendFailed(self._scrub(exc.message), retry=True) from None
        except TimeoutError:
            raise SendFailed(
                f"no answer from Telegram within {self.timeout:g} s", retry=True
            ) from None
        except TelegramAPIError as exc:
            raise SendFailed(self._scrub(exc.message), retry=False) from None

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.bot.session.close()
