"""Heartbeats: the leading engine and the bot write what they see (each feed connection and
how stale its last message is; whether the bot is up) to the database every few seconds,
so that `/readyz` of any API process, in any deployment, can report them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from alerts.db.models import EngineState
from alerts.db.session import Database

logger = logging.getLogger("alerts.health")

FEEDS = "heartbeat:feeds"
BOT = "heartbeat:bot"
INTERVAL = 2.0
# A heartbeat older than this means its writer is gone (or on standby, for an engine).
MISSED = 5 * INTERVAL


def _now() -> datetime:
    return datetime.now(UTC)


def write(db: Database, key: str, value: dict[str, Any], *, now: datetime) -> None:
    """Store one heartbeat."""
    with db.writing() as session:
        row = session.get(EngineState, key)
        if row is None:
            row = EngineState(key=key, value=value, updated_at=now)
        row.value, row.updated_at = value, now
        session.add(row)
        session.commit()


async def beat(
    db: Database, key: str, sample: Callable[[], dict[str, Any]], *, interval: float = INTERVAL
) -> None:
    """Write `sample()` under `key` every `interval` seconds, until cancelled."""
    while True:
        try:
            await asyncio.to_thread(write, db, key, sample(), now=_now())
        except Exception as exc:  # noqa: BLE001  (the database may be down: readiness shows it)
            logger.warning("could not write the %s heartbeat: %s", key, type(exc).__name__)
        await asyncio.sleep(interval)


def read(db: Database) -> dict[str, EngineState]:
    """Every heartbeat."""
    with db.session() as session:
        rows = session.exec(select(EngineState).where(col(EngineState.key).like("heartbeat:%")))
        return {row.key: row for row in rows}


def _fresh(
    db: Database, key: str, now: datetime | None, never: str, silent: str
) -> tuple[EngineState | None, dict[str, Any]]:
    row = read(db).get(key)
    if row is None:
        return None, {"error": never}
    age = ((now or _now()) - row.updated_at).total_seconds()
    if age > MISSED:
        return None, {"error": f"{silent} for {age:.0f} s"}
    return row, {}


def feeds_ready(
    db: Database, *, stale_after: float, now: datetime | None = None
) -> tuple[bool, dict[str, Any]]:
    """Ready when an engine leads and each of its feed connections is up and not stale."""
    row, missing = _fresh(db, FEEDS, now, "no engine has run yet", "no leading engine")
    if row is None:
        return False, missing
    connections = row.value.get("connections", {})
    ok = all(
        c.get("connected") and (c.get("last_message_age") or 0) <= stale_after
        for c in connections.values()
    )
    return ok, {"connections": connections, "rules": row.value.get("rules", 0)}


def recording_ready(
    db: Database, *, unhealthy_after: float, now: datetime | None = None
) -> tuple[bool, dict[str, Any]]:
    """Ready unless the leading engine's recording has failed for longer than
    `unhealthy_after` seconds, or something went to dead_letters in the last minute."""
    row, missing = _fresh(db, FEEDS, now, "no engine has run yet", "no leading engine")
    if row is None:
        return False, missing
    recording = row.value.get("recording") or {}
    failing_for = float(recording.get("failing_for") or 0)
    dead = int(recording.get("dead_letters_last_minute") or 0)
    if failing_for > unhealthy_after:
        return False, {"error": f"recording has failed for {failing_for:.0f} s", **recording}
    if dead:
        return False, {"error": f"{dead} dead letter(s) in the last minute", **recording}
    return True, recording


def bot_ready(db: Database, *, now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """Ready when a bot process reported itself connected to Telegram lately."""
    row, missing = _fresh(db, BOT, now, "the bot has not run yet", "no bot heartbeat")
    if row is None:
        return False, missing
    up = bool(row.value.get("up"))
    return up, {} if up else {"error": "the bot cannot reach Telegram (see its log)"}
