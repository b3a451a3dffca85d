"""The bot's dispatcher, and the runner that keeps it up: polling by default, webhooks when
configured. A bot that cannot start (bad token, Bot API unreachable) is reported and
retried; it never stops the rest of the service."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import TelegramAPIError, TelegramUnauthorizedError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import ClientError, web

from alerts.bot.context import BotServices
from alerts.bot.middleware import Register, Throttle
from alerts.bot.routers import accounts, link, market, mute, quiet, rules, start
from alerts.delivery.telegram import bot_session

logger = logging.getLogger("alerts.bot")


def build_dispatcher(services: BotServices) -> Dispatcher:
    """Every router, behind the per-user rate limit and user registration."""
    dispatcher = Dispatcher(services=services)
    throttle, register = Throttle(services.config.commands_per_minute), Register(services)
    for observer in (dispatcher.message, dispatcher.callback_query):
        observer.outer_middleware(throttle)
        observer.outer_middleware(register)
    dispatcher.channel_post.outer_middleware(throttle)  # a channel's posts have no sender
    dispatcher.include_routers(
        start.router(),
        market.router(),
        rules.router(),
        mute.router(),
        quiet.router(),
        accounts.router(),
        link.router(),
        start.fallback(),
    )
    return dispatcher


@dataclass(frozen=True)
class Webhook:
    """Webhook mode: Telegram posts updates to `url`, which reaches our server on `listen`
    (host, port); every request must carry `secret` in its secret-token header."""

    url: str
    secret: str
    host: str = "127.0.0.1"
    port: int = 8081


class BotRunner:
    """Runs the bot until cancelled."""

    def __init__(
        self,
        token: str,
        services: BotServices,
        *,
        api_url: str | None = None,
        proxy: str | None = None,
        webhook: Webhook | None = None,
        polling_timeout: int = 10,
        retry: tuple[float, float] = (1.0, 60.0),
    ) -> None:
        self.dispatcher = build_dispatcher(services)
        self.webhook = webhook
        self.polling_timeout = polling_timeout
        self.retry = retry
        self.up = asyncio.Event()  # set while the bot is connected (for /readyz)
        self._token = token
        self._api_url = api_url
        self._proxy = proxy

    def _scrub(self, error: BaseException) -> str:
        text = f"{type(error).__name__}: {error}".replace(self._token, "***")
        return text.replace(self._proxy, "***") if self._proxy else text

    async def run(self) -> None:
        """Start, retrying with capped backoff while it fails; then serve updates."""
        delay = self.retry[0]
        while True:
            bot = Bot(
                self._token,
                session=bot_session(self._api_url, self._proxy),
                default=DefaultBotProperties(parse_mode="HTML"),
            )
            try:
                me = await bot.get_me()
                logger.info("Telegram bot @%s is up", me.username)
                self.up.set()
                delay = self.retry[0]
                await (self._serve_webhook(bot) if self.webhook else self._poll(bot))
            except TelegramUnauthorizedError:
                logger.error("the Bot API refused TELEGRAM_BOT_TOKEN; retrying in %g s", delay)
            except (TelegramAPIError, ClientError, OSError, TimeoutError) as exc:
                logger.error(
                    "the Telegram bot is down (%s); retrying in %g s", self._scrub(exc), delay
                )
            finally:
                self.up.clear()
                await bot.session.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry[1])

    async def _poll(self, bot: Bot) -> None:
        await bot.delete_webhook()  # getUpdates is refused while a webhook is set
        polling = asyncio.create_task(
            self.dispatcher.start_polling(
                bot,
                polling_timeout=self.polling_timeout,
                handle_signals=False,
                close_bot_session=False,
            )
        )
        try:
            await asyncio.shield(polling)
        except asyncio.CancelledError:
            # Cancelling start_polling would leave its polling task running: stop it properly.
            try:
                await self.dispatcher.stop_polling()
            except RuntimeError:  # it had not started yet
                polling.cancel()
            await asyncio.gather(polling, return_exceptions=True)
            raise

    async def _serve_webhook(self, bot: Bot) -> None:
        assert self.webhook is not None
        app = web.Application()
        handler = SimpleRequestHandler(self.dispatcher, bot, secret_token=self.webhook.secret)
        handler.register(app, path=urlsplit(self.webhook.url).path or "/")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.webhook.host, self.webhook.port).start()
            await bot.set_webhook(
                self.webhook.url,
                secret_token=self.webhook.secret,
                allowed_updates=self.dispatcher.resolve_used_update_types(),
            )
            logger.info("Telegram webhook served on %s:%s", self.webhook.host, self.webhook.port)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
