"""Shared fixtures: databases on SQLite and (when TEST_DATABASE_URL is set) PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from alerts.settings import Settings
from tests.api_helpers import Api, BackgroundExchange, open_api
from tests.deployments import Layout
from tests.pg import temporary_database

POSTGRES_ENV = "TEST_DATABASE_URL"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep a developer's own `.env` and variables out of every test."""
    for field in Settings.model_fields.values():
        monkeypatch.delenv(str(field.validation_alias), raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database made for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    yield from _postgres_database()


@pytest.fixture(params=["run", "split"])
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Layout]:
    """How the service is deployed (see `tests.deployments`): `alerts run` on SQLite, and the
    split roles on PostgreSQL (skipped, saying why, when there is no PostgreSQL)."""
    if request.param == "run":
        yield Layout("run", f"sqlite:///{tmp_path / 'service.db'}")
        return
    yield from (Layout("split", url) for url in _postgres_database())


def _postgres_database() -> Iterator[str]:
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it; see README)")
    database = temporary_database(base)
    try:
        url = database.__enter__()
    except OperationalError as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {exc.orig}")
    try:
        yield url
    finally:
        database.__exit__(None, None, None)


@pytest.fixture(scope="session")
def exchange() -> Iterator[BackgroundExchange]:
    """One simulator for the session, knowing the test tokens (see `api_helpers`)."""
    with BackgroundExchange() as running:
        yield running


@pytest.fixture
def api(database_url: str, exchange: BackgroundExchange) -> Iterator[Api]:
    """The REST API on a fresh, migrated database (SQLite and PostgreSQL)."""
    yield from open_api(database_url, exchange.url)
