"""Waking the delivery workers when deliveries are enqueued, instead of making them poll.

In one process the session that enqueued rings the `Doorbell` of its `Database` as it
commits (`ring_on_commit`); across processes PostgreSQL carries a `NOTIFY` on `CHANNEL`,
sent with the commit, to every worker that `listen`s. Workers still poll now and then, so
a lost notification (a listener reconnecting) costs at most a poll interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

logger = logging.getLogger("alerts.db")

CHANNEL = "alerts_deliveries"
_RING = "alerts.ring"  # session.info: this transaction enqueued deliveries
_BELL = "alerts.doorbell"  # session.info: the doorbell of the session's database


class Doorbell:
    """Events of this process's workers, set (from any thread) when a commit enqueued."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}

    def add(self, wake: asyncio.Event) -> None:
        """Set `wake` on every ring from now on (call in its event loop)."""
        with self._lock:
            self._waiting[wake] = asyncio.get_running_loop()

    def discard(self, wake: asyncio.Event) -> None:
        """Stop setting `wake`."""
        with self._lock:
            self._waiting.pop(wake, None)

    def ring(self) -> None:
        """Wake every worker of this process."""
        with self._lock:
            waiting = list(self._waiting.items())
        for wake, loop in waiting:
            with contextlib.suppress(RuntimeError):  # its loop has closed meanwhile
                loop.call_soon_threadsafe(wake.set)


def session_info(doorbell: Doorbell) -> dict[str, object]:
    """What a session of a database with `doorbell` carries, for `ring_on_commit`."""
    return {_BELL: doorbell}


def ring_on_commit(session: Session) -> None:
    """Ring the session's doorbell when (and if) its transaction commits."""
    session.info[_RING] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_RING, False):
        bell = session.info.get(_BELL)
        if isinstance(bell, Doorbell):
            bell.ring()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_RING, None)


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq (and so psycopg) takes it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(database_url: str, wake: Callable[[], None], *, retry_delay: float = 5.0) -> None:
    """Call `wake` on every notification on `CHANNEL` until cancelled, reconnecting when the
    connection drops (and waking once then: something may have come meanwhile)."""
    import psycopg

    url = libpq_url(database_url)
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                await conn.execute(f"LISTEN {CHANNEL}")
                wake()
                async for _ in conn.notifies():
                    wake()
        except (OSError, psycopg.Error) as exc:
            # Safe to go on: the workers poll meanwhile, so deliveries wait a poll interval
            # at most; the error names the server, never the password.
            logger.warning(
                "listening for new deliveries failed (%s); polling until it reconnects in %.0f s",
                type(exc).__name__,
                retry_delay,
            )
        await asyncio.sleep(retry_delay)
