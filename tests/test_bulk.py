"""Many rows in statements whose text does not grow with them (`alerts.db.bulk`), on SQLite and
PostgreSQL: ids answered in the rows' order, every value read back as written, lists matched,
and a value too long for its column refused, never cut short."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from alerts.db.bulk import Inserter, one_of
from alerts.db.migrate import upgrade
from alerts.db.models import Event, User
from alerts.db.session import Database

EVENTS = Event.metadata.tables["events"]
COLUMNS = ["user_id", "rule_id", "rule_name", "kind", "symbol", "values", "after_gap", "test",
           "dedup_key", "fired_at"]  # fmt: skip
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _rows(user_id: int, n: int, key: str = "k") -> list[dict[str, object]]:
    return [
        {
            "user_id": user_id,
            "rule_id": None,
            "rule_name": f"rule {i} 'quoted' «ёж», {{braced}} \\ \"escaped\"",
            "kind": "price_cross",
            "symbol": None if i % 3 else "BTC-USDT",
            "values": {"level": str(i), "nested": ["a", None, {"b": i}]},
            "after_gap": bool(i % 2),
            "test": False,
            "dedup_key": None if i % 5 else f"{key}{i}",
            "fired_at": T0 + timedelta(microseconds=i),
        }
        for i in range(n)
    ]


@pytest.fixture
def db(database_url: str) -> Database:
    upgrade(database_url)
    return Database(database_url)


def test_rows_go_in_with_their_ids_in_order_and_read_back_unchanged(db: Database) -> None:
    with db.session() as session:
        user = User(name="bulk")
        session.add(user)
        session.commit()
        assert user.id is not None
        rows = _rows(user.id, 2_500)
        insert = Inserter(EVENTS, COLUMNS)
        ids = insert(session.connection(), rows)
        assert insert(session.connection(), []) == []
        session.commit()
        stored = {
            row.id: row
            for row in session.execute(
                select(EVENTS).where(one_of(EVENTS.c.id, "ids", db.dialect)), {"ids": ids}
            )
        }
    db.dispose()
    assert len(ids) == len(set(ids)) == 2_500 and ids == sorted(ids)
    for i, row in zip(ids, rows, strict=True):
        assert {c: getattr(stored[i], c) for c in COLUMNS} == row


def test_a_value_too_long_for_its_column_is_refused_not_cut_short(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite does not enforce column lengths")
    with db.session() as session:
        user = User(name="bulk")
        session.add(user)
        session.commit()
        assert user.id is not None
        rows = _rows(user.id, 3, key="t" * 500)
        with pytest.raises(DBAPIError, match="too long"):
            Inserter(EVENTS, COLUMNS)(session.connection(), rows)
    db.dispose()
