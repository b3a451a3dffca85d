"""Telegram through aiogram: every Bot API error mapped, in this one place, to retry or not.

Alerts go out through aiogram's own session: its long-lived aiohttp `ClientSession` (one per
bot, shared by nothing else), with `TELEGRAM_PROXY` (http, https or socks5, through
aiohttp-socks, as aiogram does it) and the system's trust store, `SSL_CERT_FILE` included,
for a self-hosted Bot API server behind a private CA. The bot's commands use a session made
the same way (`bot_session`). On that session the path is lean: the sendMessage body is JSON
encoded once (msgspec), and a sent message's answer is only checked for `"ok": true`; only an
error answer is parsed, by aiogram's `check_response`, into the exceptions mapped below (the
full aiogram path built pydantic models both ways, about 450 µs of CPU per message). A 2xx
answer without the Bot API's JSON counts as sent: sending again could only repeat it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from typing import Any

import aiohttp
import msgspec
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import SendMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message
from alerts.delivery.ratelimit import Limits, RateLimiter

logger = logging.getLogger("alerts.delivery.telegram")

# Chats that are gone for good: the destination is disabled rather than retried.
_GONE = ("chat not found", "user is deactivated", "bot was kicked", "group chat was deleted")


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


@functools.lru_cache(maxsize=4096)
def _markup(rule_id: int | None) -> dict[str, Any] | None:
    markup = buttons(rule_id)
    return None if markup is None else markup.model_dump(exclude_none=True)


def bot_session(api_url: str | None, proxy: str | None = None) -> AiohttpSession:
    """An aiogram session for the official Bot API, or for the server at `api_url`, through
    `proxy` if given, trusting the system's certificates (and `SSL_CERT_FILE`)."""
    session = AiohttpSession(proxy=proxy)
    if api_url:
        session.api = TelegramAPIServer.from_base(api_url.rstrip("/"))
    # aiogram trusts certifi's roots only; the system's store honours SSL_CERT_FILE and a
    # company's or a self-hosted server's own CA. (Its connector arguments are the one place
    # to say so, with or without a proxy.)
    session._connector_init["ssl"] = ssl.create_default_context()
    return session


class _Answer(msgspec.Struct):
    """All a sent message's answer is read for."""

    ok: bool = False


_encode = msgspec.json.Encoder().encode
_JSON = {"Content-Type": "application/json"}
_answer = msgspec.json.Decoder(_Answer).decode


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
        proxy: str | None = None,
        paid_broadcast: bool = False,
    ) -> None:
        # Paid broadcasts (`allow_paid_broadcast`) lift the bot's cap to 1,000 messages/s;
        # the caps per chat stay.
        self.paid_broadcast = paid_broadcast
        self.limiter = limiter or RateLimiter(
            Limits(bot_per_second=1000.0 if paid_broadcast else 30.0)
        )
        self._session = bot_session(api_url, proxy)
        self.bot = Bot(token, session=self._session)
        self.timeout = timeout
        self._token = token
        self._url = self._session.api.api_url(token=token, method="sendMessage")
        # Requests in flight are bounded, and a slot is taken from the limiter only once a
        # request holds one of them: were requests to wait for a connection after taking
        # their slot, they would reach Telegram in bursts and meet 429s.
        self._in_flight = asyncio.Semaphore(in_flight)
        self._written: dict[asyncio.Task[Any], bool] = {}

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***")

    async def send(self, chat_id: int, message: Message) -> None:
        """Send one message or raise `SendFailed` saying what to do next."""
        await self.limiter.chat_ready(chat_id)  # a chat that must wait holds no send slot
        async with self._in_flight:
            task = asyncio.current_task()
            assert task is not None
            self._written[task] = False
            try:
                status, answer = await self._post(chat_id, message, task)
            finally:
                del self._written[task]
        if 200 <= status < 300:
            try:
                if _answer(answer).ok:
                    return
            except msgspec.DecodeError:
                return  # no Bot API JSON to say otherwise: sending again could only repeat it
        self._failed(chat_id, message, status, answer)

    def has_gone_out(self, task: asyncio.Task[Any]) -> bool:
        """Whether the send that `task` is making has reached Telegram (its request written):
        until then, cancelling it sends nothing."""
        return self._written.get(task, False)

    async def _post(
        self, chat_id: int, message: Message, task: asyncio.Task[Any]
    ) -> tuple[int, bytes]:
        fields: dict[str, Any] = {
            "chat_id": chat_id,
            "text": message.html,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        if self.paid_broadcast:
            fields["allow_paid_broadcast"] = True
        markup = _markup(message.rule_id)
        if markup is not None:
            fields["reply_markup"] = markup
        body = _encode(fields)
        session = await self._session.create_session()
        await self.limiter.acquire(chat_id)
        self._written[task] = True
        try:
            # `timeout`, not `wait_for`: wait_for would run the request in a new task, which
            # starts only after everything else ready in the loop; the request would then
            # reach Telegram later than its slot was taken, by however busy the loop is.
            async with asyncio.timeout(self.timeout):
                async with session.post(self._url, data=body, headers=_JSON) as response:
                    return response.status, await response.read()
        except TimeoutError:
            raise SendFailed(
                f"no answer from Telegram within {self.timeout:g} s", retry=True
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise SendFailed(self._scrub(f"{type(exc).__name__}: {exc}"), retry=True) from None

    def _failed(self, chat_id: int, message: Message, status: int, answer: bytes) -> None:
        """Raise `SendFailed` for an answer that is not a sent message: aiogram's
        `check_response` says which error it is."""
        method = SendMessage(chat_id=chat_id, text=message.html, parse_mode="HTML")
        text = answer.decode("utf-8", "replace")
        try:
            self._session.check_response(self.bot, method, status, text)
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
        except TelegramEntityTooLarge as exc:
            raise SendFailed(self._scrub(exc.message), retry=False) from None
        except (TelegramBadRequest, TelegramNotFound) as exc:
            gone = any(marker in exc.message.lower() for marker in _GONE)
            raise SendFailed(self._scrub(exc.message), retry=False, disable=gone) from None
        except TelegramUnauthorizedError:
            raise SendFailed(
                "Telegram refused the bot token (check TELEGRAM_BOT_TOKEN)", retry=True
            ) from None
        except TelegramServerError as exc:
            raise SendFailed(self._scrub(exc.message), retry=True) from None
        except TelegramAPIError as exc:
            raise SendFailed(self._scrub(exc.message), retry=False) from None
        except ClientDecodeError:
            # Not the Bot API's JSON: a proxy's error page, a server in trouble.
            raise SendFailed(
                f"Telegram answered HTTP {status} with something other than the Bot API's JSON",
                retry=True,
            ) from None
        # An answer aiogram accepts as a success after all (2xx, "ok": true).

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._session.close()
