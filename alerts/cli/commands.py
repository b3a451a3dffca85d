"""The service's commands: run it whole or one role at a time, the demo, and migrations.

Each imports what it runs only when chosen, so that `alerts --help` and `alerts simulate`
start without loading the service."""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys

from alerts.cli.exits import EXIT_CONFIG, EXIT_OK, EXIT_UNAVAILABLE
from alerts.settings import Settings

logger = logging.getLogger("alerts.cli")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Migrate, then run API, engine and delivery in one process."""
    from alerts.db.migrate import upgrade
    from alerts.runtime import run_all

    if not _listenable("run", args.host, args.port):
        return EXIT_UNAVAILABLE
    upgrade(settings.database_url)
    asyncio.run(run_all(settings, args.host, args.port))
    return EXIT_OK


def api(args: argparse.Namespace, settings: Settings) -> int:
    """Run the REST API alone."""
    from alerts.runtime import run_api

    if not _migrated("api", settings):
        return EXIT_CONFIG
    if not _listenable("api", args.host, args.port):
        return EXIT_UNAVAILABLE
    logger.info("REST API on http://%s:%s (docs at /docs)", args.host, args.port)
    asyncio.run(run_api(settings, args.host, args.port))
    return EXIT_OK


def engine(args: argparse.Namespace, settings: Settings) -> int:
    """Run the rule engine alone."""
    from alerts.runtime import run_engine

    if not _migrated("engine", settings):
        return EXIT_CONFIG
    if settings.metrics_listen and not _listenable("engine", *settings.metrics_listen):
        return EXIT_UNAVAILABLE
    asyncio.run(run_engine(settings))
    return EXIT_OK


def worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run a delivery worker alone."""
    from alerts.runtime import run_worker

    if not _migrated("worker", settings):
        return EXIT_CONFIG
    if settings.metrics_listen and not _listenable("worker", *settings.metrics_listen):
        return EXIT_UNAVAILABLE
    asyncio.run(run_worker(settings))
    return EXIT_OK


def bot(args: argparse.Namespace, settings: Settings) -> int:
    """Run the Telegram bot alone."""
    from alerts.runtime import run_bot

    if settings.telegram_bot_token is None:
        print("alerts bot: set TELEGRAM_BOT_TOKEN (from @BotFather) first", file=sys.stderr)
        return EXIT_CONFIG
    if not _migrated("bot", settings):
        return EXIT_CONFIG
    asyncio.run(run_bot(settings))
    return EXIT_OK


def demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the whole service against a built-in simulator."""
    from alerts.demo import run_demo

    asyncio.run(run_demo(args.seconds, port=args.port, apprise=args.apprise))
    return EXIT_OK


def db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    """Apply the database migrations."""
    from alerts.db.migrate import upgrade

    upgrade(settings.database_url)
    print("database is at the latest revision")
    return EXIT_OK


def _migrated(command: str, settings: Settings) -> bool:
    from alerts.db.migrate import is_current

    if is_current(settings.database_url):
        return True
    print(
        f"alerts {command}: the database is not migrated to the latest revision: "
        "run `alerts db upgrade` first",
        file=sys.stderr,
    )
    return False


def _listenable(command: str, host: str, port: int) -> bool:
    try:
        # Checked here for a one-line error; uvicorn binds itself, so that asyncio's sockets
        # get TCP_NODELAY (a socket handed over from here would not, costing 40 ms a reply).
        socket.create_server((host, port)).close()
    except OSError as exc:
        print(f"alerts {command}: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return False
    return True
