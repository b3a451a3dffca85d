"""Database engines and sessions: SQLite in WAL mode with foreign keys on, or PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from typing import Any, ParamSpec, TypeVar

from psycopg.types.array import ListBinaryDumper
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

from alerts.db.doorbell import Doorbell, session_info

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


def _binary_arrays(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Lists (the array parameters of `alerts.db.bulk`) go in PostgreSQL's binary format:
    # psycopg's text format escapes each string element with a regular expression, ~40 µs a
    # row of events, and the binary one needs no escaping.
    dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite connections get WAL, foreign keys and a busy timeout."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(url, pool_pre_ping=True, **kwargs)
    event.listen(engine, "connect", _binary_arrays)
    return engine


class Database:
    """One engine and the sessions made from it."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        self.engine = make_engine(url, **kwargs)
        self.url = url
        self._writer = threading.Lock()
        self._sqlite_writer: ThreadPoolExecutor | None = None
        # Rung when a commit of this process enqueued deliveries (see `alerts.db.doorbell`).
        self.doorbell = Doorbell()

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
        info = session_info(self.doorbell)
        with Session(self.engine, expire_on_commit=False, info=info) as session:
            yield session

    async def call(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking database work off the event loop, so that the feed's reader and its
        pings never wait for it: on SQLite in the one writer thread, in order (SQLite has one
        writer; taking turns in one thread costs no lock waits); on PostgreSQL in a worker
        thread, as many at once as there are callers."""
        if self.dialect != "sqlite":
            return await asyncio.to_thread(func, *args, **kwargs)
        if self._sqlite_writer is None:
            self._sqlite_writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._sqlite_writer, partial(func, *args, **kwargs))

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def dispose(self) -> None:
        """Close every pooled connection (and the writer thread)."""
        if self._sqlite_writer is not None:
            self._sqlite_writer.shutdown(wait=True)
            self._sqlite_writer = None
        self.engine.dispose()
