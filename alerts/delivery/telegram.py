"""Telegram through aiogram: every Bot API error mapped, in this one place, to retry or not."""

from __future__ import annotations

import asyncio
import logging

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
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions

from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message
from alerts.delivery.ratelimit import RateLimiter

logger = logging.getLogger("alerts.delivery.telegram")

# Chats that are gone for good: the destination is disabled rather than retried.
_GONE = ("chat not found", "user is deactivated", "bot was kicked", "group chat was deleted")


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
        self.bot = Bot(token, session=bot_session(api_url))
        self.limiter = limiter or RateLimiter()
        self.timeout = timeout
        self._token = token
        # A slot is taken from the limiter only when the request can go out at once: were
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
        await self.limiter.acquire(chat_id)
        try:
            await asyncio.wait_for(
                self.bot.send_message(
                    chat_id,
                    message.html,
                    parse_mode="HTML",
                    reply_markup=buttons(message.rule_id),
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                ),
                self.timeout,
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
