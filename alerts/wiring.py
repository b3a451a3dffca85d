"""The service's parts built from its settings: the engine, a delivery worker, the bot (what
`alerts.runtime` runs, and what tests and the demo build the same way)."""

from __future__ import annotations

import gc
import logging
from datetime import timedelta
from functools import partial

from pydantic import SecretStr

from alerts.bot.app import BotRunner, Webhook
from alerts.bot.context import BotConfig, BotServices
from alerts.db.session import Database
from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.webhook import WebhookNotifier
from alerts.delivery.worker import DeliveryWorker, WorkerConfig
from alerts.engine.runner import Engine, EngineConfig
from alerts.feed import FeedConfig
from alerts.feed.verify import verify_token
from alerts.metrics import Metrics
from alerts.security import SecretBox
from alerts.settings import Settings

logger = logging.getLogger("alerts.runtime")


def _box(settings: Settings) -> SecretBox:
    secret = settings.alerts_secret_key
    return SecretBox(secret.get_secret_value() if secret else None)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def make_engine(settings: Settings, db: Database, *, metrics: Metrics | None = None) -> Engine:
    """The engine for these settings, counting into `metrics`."""
    feed = FeedConfig(
        url=settings.xrocket_ws_url,
        ping_interval=settings.feed_ping_interval,
        stale_timeout=settings.feed_stale_timeout,
    )
    config = EngineConfig(
        feed=feed,
        symbol_stale_after=settings.symbol_stale_after,
        rest_url=settings.xrocket_api_url,
    )
    return Engine(db, config, _box(settings), metrics=metrics)


def freeze_heap() -> None:
    """Leave what start-up made (modules, settings, the wiring: ~275,000 objects, all kept for
    the process's life) out of the garbage collector's full passes: each one walked them all,
    ~0.3 s on the benchmark's VM, several times per 5,000 webhooks sent, freeing nothing."""
    gc.collect()
    gc.freeze()


def make_worker(
    settings: Settings, db: Database, *, metrics: Metrics | None = None
) -> DeliveryWorker:
    """The delivery worker for these settings (Telegram only with a bot token), counting
    into `metrics`."""
    token = settings.telegram_bot_token
    telegram = (
        TelegramNotifier(
            token.get_secret_value(),
            api_url=settings.telegram_api_url,
            proxy=_secret(settings.telegram_proxy),
            paid_broadcast=settings.telegram_paid_broadcast,
        )
        if token
        else None
    )
    if telegram is None:
        logger.warning("TELEGRAM_BOT_TOKEN is not set: Telegram deliveries wait until it is")
    config = WorkerConfig(
        lease=timedelta(seconds=settings.delivery_lease),
        retention=timedelta(days=settings.events_retention_days),
    )
    apprise = AppriseNotifier(
        processes=settings.apprise_processes, allow_private=settings.allow_private_targets
    )
    webhooks = WebhookNotifier(allow_private=settings.allow_private_targets)
    return DeliveryWorker(
        db,
        _box(settings),
        telegram=telegram,
        apprise=apprise,
        webhooks=webhooks,
        config=config,
        metrics=metrics,
    )


def make_bot(settings: Settings, db: Database) -> BotRunner | None:
    """The Telegram bot for these settings, or None without a bot token."""
    token = settings.telegram_bot_token
    if token is None:
        return None
    webhook = None
    if settings.telegram_webhook_url and settings.telegram_webhook_secret:
        host, _, port = settings.bot_listen.rpartition(":")
        webhook = Webhook(
            url=settings.telegram_webhook_url,
            secret=settings.telegram_webhook_secret.get_secret_value(),
            host=host,
            port=int(port),
        )
    services = BotServices(
        db,
        _box(settings),
        partial(verify_token, settings.xrocket_ws_url),
        BotConfig(
            max_rules=settings.max_rules_per_user,
            commands_per_minute=settings.bot_commands_per_minute,
        ),
    )
    return BotRunner(
        token.get_secret_value(),
        services,
        api_url=settings.telegram_api_url,
        proxy=_secret(settings.telegram_proxy),
        webhook=webhook,
    )
