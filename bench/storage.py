"""Storage benchmark: how much space alerts take, and how long pruning them takes, on SQLite
and PostgreSQL.

Fills a fresh database with N alerts as the service stores them (an event with a price
crossing's values, one delivery sent on the first attempt, that attempt), through the outbox's
own `enqueue`, then reports the bytes per alert (tables and indexes) and the space a million
take; then prunes them all as the worker does (`alerts.db.retention.prune`, 200 at a time,
the worker's default) and reports the rate and the longest batch (how long recording could
wait behind one).

Judged by: nothing to beat; the README quotes the space per million alerts.

    .venv/bin/python bench/storage.py [--alerts 100000] [--postgres URL]

Without --postgres, TEST_DATABASE_URL is used when set; PostgreSQL is skipped otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.db.migrate import upgrade
from alerts.db.models import Destination, User
from alerts.db.outbox import NewEvent, enqueue
from alerts.db.retention import prune
from alerts.db.session import Database
from tests.pg import temporary_database

TABLES = ("events", "deliveries", "delivery_attempts")
BATCH = 1000
BATCH_PRUNED = 200  # WorkerConfig.prune_batch


def fill(db: Database, alerts: int) -> float:
    """`alerts` sent alerts, a month old; returns seconds taken."""
    started = time.perf_counter()
    with db.session() as session:
        user = User(name="trader", telegram_user_id=4242)
        session.add(user)
        session.flush()
        assert user.id is not None
        chat = Destination(user_id=user.id, kind="telegram", name="me", chat_id=4242)
        session.add(chat)
        session.commit()
        user_id, chat_id = user.id, chat.id or 0
    at = datetime.now(UTC) - timedelta(days=30)
    for start in range(0, alerts, BATCH):
        events = []
        for i in range(start, min(start + BATCH, alerts)):
            fired = at + timedelta(milliseconds=i)
            price = f"{70_000 + i % 1000}.{i % 100:02d}"
            values = {
                "symbol": "BTC-USDT",
                "price": price,
                "previous": "69999.5",
                "level": "70000",
                "direction": "up",
                "time": fired.isoformat(),
                "rule": f"BTC over 70k #{i % 50}",
                "kind": "price_cross",
            }
            events.append(
                NewEvent(
                    user_id=user_id,
                    rule_id=None,
                    rule_name=f"BTC over 70k #{i % 50}",
                    kind="price_cross",
                    symbol="BTC-USDT",
                    values=values,
                    destination_ids=[chat_id],
                    fired_at=fired,
                )
            )
        with db.writing() as session:
            enqueue(session, events)
            session.commit()
    with db.writing() as session:
        session.execute(
            text(
                "UPDATE deliveries SET status = 'sent', attempts = 1, sent_at = created_at,"
                " lease_until = NULL"
            )
        )
        session.execute(
            text(
                "INSERT INTO delivery_attempts (delivery_id, started_at, outcome, duration_ms)"
                " SELECT id, created_at, 'sent', 42 FROM deliveries"
            )
        )
        session.commit()
    return time.perf_counter() - started


def size(db: Database, path: Path | None) -> int:
    """Bytes the alerts' tables and their indexes take."""
    if db.dialect == "sqlite":
        assert path is not None
        with db.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            names = ", ".join(f"'{t}'" for t in TABLES)
            indexes = conn.execute(
                text(f"SELECT name FROM sqlite_master WHERE tbl_name IN ({names})")  # noqa: S608
            ).scalars()
            wanted = set(indexes) | set(TABLES)
            try:
                rows = conn.execute(text("SELECT name, pgsize FROM dbstat")).all()
            except Exception:  # noqa: BLE001  (a SQLite built without dbstat: the whole file)
                return path.stat().st_size
            return sum(n for name, n in rows if name in wanted)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        return sum(
            int(conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar() or 0)
            for t in TABLES
        )


def prune_all(db: Database) -> tuple[float, float]:
    """Prune everything as the worker does; (alerts per second, longest batch in ms)."""
    before = datetime.now(UTC)
    started, longest, total = time.perf_counter(), 0.0, 0
    while True:
        t = time.perf_counter()
        n = prune(db, before, BATCH_PRUNED)
        longest = max(longest, time.perf_counter() - t)
        total += n
        if n < BATCH_PRUNED:
            break
    return total / (time.perf_counter() - started), longest * 1000


def run(name: str, url: str, alerts: int, path: Path | None = None) -> None:
    upgrade(url)
    db = Database(url)
    try:
        seconds = fill(db, alerts)
        used = size(db, path)
        rate, longest = prune_all(db)
    finally:
        db.dispose()
    per = used / alerts
    print(
        f"{name:10} {alerts:,} alerts stored in {seconds:.1f} s: {per:,.0f} bytes per alert,"
        f" {per * 1_000_000 / 2**20:,.0f} MiB per million;"
        f" pruned at {rate:,.0f} alerts/s, longest batch of {BATCH_PRUNED} {longest:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "storage.db"
        run("SQLite", f"sqlite:///{path}", args.alerts, path)
    if not args.postgres:
        print("PostgreSQL: skipped (pass --postgres URL or set TEST_DATABASE_URL)")
        return
    with temporary_database(args.postgres, "alerts_bench") as url:
        run("PostgreSQL", url, args.alerts)


if __name__ == "__main__":
    main()
