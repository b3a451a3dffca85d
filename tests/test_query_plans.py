"""Listing a user's rules and events walks an index (SQLite's plan), never the whole table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from tests.api_helpers import Api, BackgroundExchange, open_api


@pytest.fixture
def sqlite_api(tmp_path: Path, exchange: BackgroundExchange) -> Iterator[Api]:
    yield from open_api(f"sqlite:///{tmp_path}/plans.db", exchange.url)


def _plans_of(api: Api, path: str, params: dict[str, Any], headers: dict[str, str]) -> list[str]:
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(api.db.engine, "before_cursor_execute", capture)
    try:
        r = api.client.get(path, params=params, headers=headers)
        assert r.status_code == 200, r.text
    finally:
        event.remove(api.db.engine, "before_cursor_execute", capture)
    plans = []
    with api.db.engine.connect() as conn:
        for statement, parameters in statements:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            plans.append(" | ".join(str(row[-1]) for row in rows))
    return plans


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/rules", {}),
        ("/v1/rules", {"cursor": "5"}),
        ("/v1/rules", {"kind": "spread"}),
        ("/v1/rules", {"symbol": "BTC-USDT"}),
        ("/v1/rules", {"enabled": "true"}),
        ("/v1/events", {}),
    ],
)
def test_list_queries_use_indexes(sqlite_api: Api, path: str, params: dict[str, Any]) -> None:
    api = sqlite_api
    alice = api.user("alice")
    api.create("/v1/rules", {"kind": "spread", "symbol": "BTC-USDT", "percent": "1"}, alice)
    with api.db.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    plans = _plans_of(api, path, params, alice)
    steps = [
        step
        for plan in plans
        for step in plan.split(" | ")
        if step.split(" ")[1:2] in (["rules"], ["events"])
    ]
    assert steps, plans
    for step in steps:
        # SEARCH: the index narrows to this user's rows; a SCAN would read every row.
        assert step.startswith("SEARCH") and "(user_id=?" in step, step
