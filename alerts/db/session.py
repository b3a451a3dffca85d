"""Database engines and sessions: SQLite in WAL mode with foreign keys on, or PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

P = ParamSpec("P")
T = TypeVar("T")


def normalize_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; NORMAL syncs at checkpoints, which WAL keeps
    # safe against corruption (a power cut may lose the last commits, never the file).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite connections get WAL, foreign keys and a busy timeout."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


class Database:
    """One engine and the sessions made from it."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.engine = make_engine(url, **kwargs)
        self._writer = threading.Lock()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session for a background write transaction. On SQLite these take turns inside
        the process: two connections writing at once would make one wait in SQLite's busy
        handler, which sleeps in steps of up to 100 ms."""
        if self.dialect != "sqlite":
            with self.session() as session:
                yield session
            return
        with self._writer, self.session() as session:
            yield session

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that is closed (and rolled back if not committed) on exit."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    async def call(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run short blocking database work from the event loop: inline on SQLite, whose work
        is CPU in this process (a worker thread would only add a wait for the interpreter
        lock, up to its 5 ms switch interval, to every call); in a worker thread on PostgreSQL,
        where waiting on the network must not hold up the loop."""
        if self.dialect == "sqlite":
            return func(*args, **kwargs)
        return await asyncio.to_thread(func, *args, **kwargs)

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
