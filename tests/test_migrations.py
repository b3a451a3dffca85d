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
