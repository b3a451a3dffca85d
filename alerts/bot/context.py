"""What every handler is given (aiogram injects `services` by name): the database, the
secret box, the exchange verifier, the limits and the clock."""

from __future__ import annotations

import asyncio
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Concatenate, ParamSpec, TypeVar

from sqlmodel import Session

from alerts.db.session import Database
from alerts.security import SecretBox
from alerts.services.accounts import Verifier

P = ParamSpec("P")
T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class BotConfig:
    """Per-user limits and paging."""

    max_rules: int = 1000
    commands_per_minute: int = 20
    page_size: int = 10


@dataclass(frozen=True)
class BotServices:
    """The bot's handle on the rest of the service."""

    db: Database
    box: SecretBox
    verify: Verifier
    config: BotConfig = BotConfig()
    clock: Callable[[], datetime] = field(default=_utcnow)

    async def read(
        self, func: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a service function that only reads, off the event loop."""

        def work() -> T:
            with self.db.session() as session:
                return func(session, *args, **kwargs)

        return await asyncio.to_thread(work)

    async def write(
        self, func: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run a service function that writes, off the event loop, taking its turn among
        this process's writers (see `Database.writing`)."""

        def work() -> T:
            with self.db.writing() as session:
                return func(session, *args, **kwargs)

        return await asyncio.to_thread(work)


def esc(value: object) -> str:
    """Text made safe for an HTML-formatted message."""
    return html.escape(str(value), quote=False)
