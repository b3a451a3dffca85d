"""Leader election among processes: one engine evaluates, the others wait on standby; one
delivery worker per bot sends Telegram messages, so that Telegram's limits hold in total.

On PostgreSQL the leader holds a session-level advisory lock on a connection of its own.
When its process dies, the server drops the connection and the lock with it, and a standby
that asks every `interval` seconds takes over. The leader checks its connection as often:
if it breaks, the lock may be gone, so it steps down at once rather than risk two engines
evaluating the same push. SQLite serves one machine, so a lock file beside the database
plays the same part there.

Each role has its own lock: `ENGINE`, and `telegram_sender(bot_id)` for one bot's sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from alerts.db.session import Database

logger = logging.getLogger("alerts.leadership")


@dataclass(frozen=True)
class Role:
    """What a lock elects: its advisory lock key (any fixed 64-bit number no other application
    on the database uses), the lock file's suffix on SQLite, and what the log says."""

    key: int
    file_suffix: str
    leading: str
    standby: str


ENGINE = Role(
    key=0x78526F636B6574,  # "xRocket"
    file_suffix="engine",
    leading="this engine leads",
    standby="another engine leads: waiting on standby",
)


def telegram_sender(bot_id: int) -> Role:
    """The role of the one worker that sends for bot `bot_id` (the token's number)."""
    return Role(
        key=0x7852_0000_0000_0000 | (bot_id & 0xFFFF_FFFF_FFFF),
        file_suffix=f"telegram-{bot_id}",
        leading=f"this worker sends for Telegram bot {bot_id}",
        standby=f"another worker sends for Telegram bot {bot_id}: this one sends the rest",
    )


class Leadership:
    """`await acquire()` returns once this process leads; `lost` is set if it stops leading."""

    def __init__(self, db: Database, *, role: Role = ENGINE, interval: float = 1.0) -> None:
        self.db = db
        self.role = role
        self.interval = interval
        self.lost = asyncio.Event()
        self._conn: Connection | None = None
        self._file: Any = None
        self._watch: asyncio.Task[None] | None = None
        self._pid: object = None  # the server process holding our lock

    async def acquire(self) -> None:
        """Wait until this process holds the lock, then watch that it keeps it."""
        announced = False
        while not await asyncio.to_thread(self._try):
            if not announced:
                logger.info(self.role.standby)
                announced = True
            await asyncio.sleep(self.interval)
        logger.info(self.role.leading)
        self.lost.clear()
        self._watch = asyncio.create_task(self._keep(), name=f"{self.role.file_suffix} lock")

    def _try(self) -> bool:
        if self.db.dialect == "sqlite":
            return self._try_file()
        try:
            conn = self._conn or self.db.engine.connect()
            self._conn = conn
            locked = bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.role.key}).scalar()
            )
            self._pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
            conn.commit()
        except Exception as exc:  # noqa: BLE001  (a broken connection: try a new one next time)
            logger.warning(
                "cannot reach the database for the %s lock: %s",
                self.role.file_suffix,
                type(exc).__name__,
            )
            self._drop_connection()
            return False
        return locked

    def _try_file(self) -> bool:
        database = self.db.engine.url.database or "alerts"
        suffix = self.role.file_suffix
        path = Path(f"{database}.{suffix}.lock") if database != ":memory:" else None
        if path is None:
            return True
        handle = self._file or open(path, "a+")  # noqa: SIM115  (held open while leading)
        self._file = handle
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return True

    async def _keep(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._conn is None:
                continue  # the file lock lasts as long as the process
            if not await asyncio.to_thread(self._alive):
                logger.error(
                    "lost the database connection that holds the %s lock", self.role.file_suffix
                )
                self._drop_connection()
                self.lost.set()
                return

    def _alive(self) -> bool:
        assert self._conn is not None
        # A connection that broke may have been replaced behind our back, without the lock:
        # the same server process is the proof that the lock is still ours.
        try:
            pid = self._conn.execute(text("SELECT pg_backend_pid()")).scalar()
            self._conn.commit()
        except Exception:  # noqa: BLE001  (whatever broke it, the lock cannot be trusted)
            return False
        return pid == self._pid

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    async def release(self) -> None:
        """Stop leading (on shutdown): the lock goes with the connection or the file."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._conn is not None:
            conn = self._conn

            def unlock() -> None:
                with contextlib.suppress(Exception):
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.role.key})
                    conn.commit()

            await asyncio.to_thread(unlock)
            self._drop_connection()
        if self._file is not None:
            self._file.close()
            self._file = None
