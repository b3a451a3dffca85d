"""Migrations build the schema from nothing, and agree with the models, on both databases."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from alerts.db import models  # noqa: F401  (the tables under test)
from alerts.db.migrate import alembic_config, upgrade
from alerts.db.session import Database, make_engine


def test_upgrade_head_matches_the_models(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, SQLModel.metadata) == []
            tables = set(inspect(conn).get_table_names())
        assert set(SQLModel.metadata.tables) <= tables
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(database_url: str) -> None:
    upgrade(database_url)
    config = alembic_config(database_url)
    command.downgrade(config, "base")
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            assert "rules" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()
    upgrade(database_url)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    db = Database(f"sqlite:///{tmp_path}/wal.db")
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        db.dispose()


def test_postgres_urls_use_psycopg() -> None:
    from alerts.db.session import normalize_url

    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unproven_telegram_destinations_are_disabled_with_a_reason(database_url: str) -> None:
    """Upgrading keeps each user's own private chat and disables every other Telegram
    destination (nothing proves it is theirs), saying how to link it; nothing is deleted."""
    upgrade(database_url, "0003")
    engine = make_engine(database_url)
    now = "2026-11-30 12:00:00+00:00"
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, name, telegram_user_id, created_at) VALUES"
                    " (1, 'alice', 111, :now), (2, 'bob', NULL, :now)"
                ),
                {"now": now},
            )
            conn.execute(
                text(
                    "INSERT INTO destinations (id, user_id, kind, name, chat_id, url_sealed,"
                    " url_masked, enabled, created_at, updated_at) VALUES"
                    " (1, 1, 'telegram', 'own', 111, NULL, NULL, :on, :now, :now),"
                    " (2, 1, 'telegram', 'someone else', 222, NULL, NULL, :on, :now, :now),"
                    " (3, 2, 'telegram', 'group', -100, NULL, NULL, :on, :now, :now),"
                    " (4, 2, 'apprise', 'hook', NULL, 'sealed', 'ntfy://x', :on, :now, :now)"
                ),
                {"now": now, "on": True},
            )
        upgrade(database_url)
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT id, enabled, disabled_reason FROM destinations ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    assert [(r[0], bool(r[1])) for r in rows] == [(1, True), (2, False), (3, False), (4, True)]
    assert rows[0][2] is None and rows[3][2] is None
    for reason in (rows[1][2], rows[2][2]):
        assert "never proven yours" in reason and "/link CODE" in reason
