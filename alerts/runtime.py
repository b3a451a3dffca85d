"""The long-running roles, wired from settings: engine, delivery worker, and all of them in
one process (`alerts run`). Each process makes one `Metrics` and hands it to what it runs.
Each stops cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from functools import partial
from typing import Any

from alerts import health
from alerts.bot.app import BotRunner
from alerts.db.leadership import Leadership
from alerts.db.session import Database
from alerts.delivery.worker import DeliveryWorker
from alerts.engine.runner import Engine
from alerts.metrics import Metrics
from alerts.settings import Settings
from alerts.wiring import freeze_heap, make_bot, make_engine, make_worker

logger = logging.getLogger("alerts.runtime")


def _stop_signals() -> asyncio.Event:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    return stopping


async def _close_worker(worker: DeliveryWorker, task: asyncio.Task[None]) -> None:
    await worker.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if worker.telegram is not None:
        await worker.telegram.close()
    await worker.apprise.close()
    await worker.webhooks.close()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _feeds(engine: Engine) -> dict[str, Any]:
    connections = {
        state.name: {
            "connected": state.connected,
            "last_message_age": None if (age := state.last_message_age) is None else round(age, 3),
        }
        for state in engine.feed_states()
    }
    health = engine.health
    recording = {
        "failing_for": round(health.failing_for, 1),
        "dead_letters_last_minute": health.dead_letters_last_minute,
    }
    return {"rules": engine.rules_loaded, "connections": connections, "recording": recording}


async def _run_bot(db: Database, bot: BotRunner) -> None:
    """The bot, with its heartbeat."""
    beating = asyncio.create_task(health.beat(db, health.BOT, lambda: {"up": bot.up.is_set()}))
    try:
        await bot.run()
    finally:
        await _cancel(beating)


async def lead_engine(settings: Settings, db: Database, *, metrics: Metrics | None = None) -> None:
    """Run an engine whenever this process leads (see `alerts.db.leadership`), until
    cancelled: on standby it waits; if it stops leading, its engine stops at once. Each
    engine it runs counts into `metrics`."""
    metrics = metrics or Metrics()
    leadership = Leadership(db)
    try:
        while True:
            await leadership.acquire()
            engine = make_engine(settings, db, metrics=metrics)
            await engine.start()
            beating = asyncio.create_task(health.beat(db, health.FEEDS, partial(_feeds, engine)))
            try:
                await leadership.lost.wait()
                logger.error("stepping down: another engine may take over")
            finally:
                await _cancel(beating)
                await engine.stop()
    finally:
        await leadership.release()


async def run_engine(settings: Settings) -> None:
    """`alerts engine`."""
    db = Database(settings.database_url)
    stopping = _stop_signals()
    metrics = Metrics()
    task = asyncio.create_task(lead_engine(settings, db, metrics=metrics), name="engine")
    stop_task = asyncio.create_task(stopping.wait())
    try:
        with metrics.served(settings.metrics_listen):
            await asyncio.wait({task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        logger.info("stopping the engine")
        stop_task.cancel()
        await _cancel(task)
        db.dispose()


async def run_worker(settings: Settings) -> None:
    """`alerts worker`."""
    db = Database(settings.database_url)
    stopping = _stop_signals()
    metrics = Metrics()
    worker = make_worker(settings, db, metrics=metrics)
    freeze_heap()
    task = asyncio.create_task(worker.run(), name="delivery worker")
    logger.info("delivery worker running (lease %s s)", settings.delivery_lease)
    try:
        with metrics.served(settings.metrics_listen):
            await stopping.wait()
    finally:
        logger.info("stopping the delivery worker")
        await _close_worker(worker, task)
        db.dispose()


async def run_bot(settings: Settings) -> None:
    """`alerts bot`."""
    db = Database(settings.database_url)
    stopping = _stop_signals()
    bot = make_bot(settings, db)
    assert bot is not None, "the command checks for a token"
    task = asyncio.create_task(_run_bot(db, bot), name="telegram bot")
    try:
        await stopping.wait()
    finally:
        logger.info("stopping the Telegram bot")
        await _cancel(task)
        db.dispose()


async def serve_api(
    settings: Settings, db: Database, host: str, port: int, *, metrics: Metrics | None = None
) -> None:
    """Serve the REST API, with `metrics` on `/metrics`, until cancelled (then it finishes
    the requests in flight)."""
    import uvicorn

    from api.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, db=db, metrics=metrics),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
        )
    )
    serving = asyncio.ensure_future(server.serve())
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
        raise


async def run_api(settings: Settings, host: str, port: int) -> None:
    """`alerts api`: the REST API until SIGINT or SIGTERM, then a clean exit."""
    db = Database(settings.database_url)
    stopping = _stop_signals()
    api_task = asyncio.create_task(
        serve_api(settings, db, host, port, metrics=Metrics()), name="api"
    )
    stop_task = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({api_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
        await _cancel(api_task)
        db.dispose()


async def run_all(settings: Settings, host: str, port: int) -> None:
    """`alerts run`: API, engine, delivery and the bot in one process, on one `/metrics`."""
    db = Database(settings.database_url)
    metrics = Metrics()
    stopping = _stop_signals()
    worker = make_worker(settings, db, metrics=metrics)
    bot = make_bot(settings, db)
    freeze_heap()  # the engine freezes again once its rules are loaded
    engine_task = asyncio.create_task(lead_engine(settings, db, metrics=metrics), name="engine")
    worker_task = asyncio.create_task(worker.run(), name="delivery worker")
    bot_task = asyncio.create_task(_run_bot(db, bot), name="telegram bot") if bot else None
    api_task = asyncio.create_task(serve_api(settings, db, host, port, metrics=metrics), name="api")
    stop_task = asyncio.create_task(stopping.wait())
    logger.info("xRocket alerts on http://%s:%s (API docs at /docs)", host, port)
    try:
        await asyncio.wait({api_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        logger.info("stopping: API, bot, engine, delivery")
        await _cancel(api_task)
        stop_task.cancel()
        await _cancel(bot_task)
        await _cancel(engine_task)
        await _close_worker(worker, worker_task)
        db.dispose()
