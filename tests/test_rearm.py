"""Re-arming (`rearm_percent`): a rule that fired waits until the price has gone back that far
past the edge it crossed; the wait is stored with the hit, cleared when the rule re-arms,
survives a restart (checked against the last price persisted), and is validated over REST.
(`test_evaluate_property.py` checks the evaluator against a brute-force reference.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from alerts.db.migrate import upgrade
from alerts.db.models import Rule
from alerts.db.recording import clear_rule_states, record
from alerts.db.session import Database
from alerts.domain.events import Ticker
from alerts.engine.armed import arm
from alerts.engine.evaluate import Evaluator
from alerts.engine.recorder import Recorder
from alerts.engine.store import load_rules
from tests.api_helpers import Api
from tests.factories import add_rule, add_user

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _row(rule_id: int, kind: str, state: Any = None, **params: str) -> dict[str, Any]:
    return {
        "id": rule_id,
        "user_id": 1,
        "kind": kind,
        "params": {"symbol": "BTC-USDT", **params},
        "trigger": "every",
        "cooldown_seconds": 0,
        "state": state,
    }


def _walk(evaluator: Evaluator, prices: list[str]) -> list[tuple[int, str]]:
    """(step, direction) of each firing as the price walks `prices`."""
    fired = []
    for step, price in enumerate(prices):
        at = T0 + timedelta(seconds=step)
        for hit in evaluator.evaluate(Ticker("BTC-USDT", Decimal(price)), at):
            fired.append((step, hit.values["direction"]))
    return fired


@pytest.mark.parametrize(
    ("params", "prices", "fired"),
    [
        # Up across 100 fires; wobbles around it do not, until 98 (2% below) re-arms it.
        (
            {"level": "100", "rearm_percent": "2"},
            ["99", "101", "99.5", "100.5", "98.1", "100.2", "98", "100.1", "97", "101"],
            [(1, "up"), (7, "up"), (9, "up")],  # 97: down across 100 held back, and re-armed
        ),
        # Only downward crossings: the wait is above the level, 2% up.
        (
            {"level": "100", "direction": "down", "rearm_percent": "2"},
            ["101", "99", "101", "99", "102", "99.9"],
            [(1, "down"), (5, "down")],
        ),
        # Without rearm_percent every crossing fires.
        ({"level": "100"}, ["99", "101", "99.5", "100.5"], [(1, "up"), (2, "down"), (3, "up")]),
    ],
)
def test_a_crossing_fires_once_until_the_price_goes_back_far_enough(
    params: dict[str, str], prices: list[str], fired: list[tuple[int, str]]
) -> None:
    evaluator = Evaluator()
    evaluator.add(arm(_row(1, "price_cross", **params)))
    assert _walk(evaluator, prices) == fired


def test_a_range_waits_past_the_edge_it_crossed() -> None:
    evaluator = Evaluator()
    evaluator.add(arm(_row(1, "price_range", low="100", high="110", rearm_percent="5")))
    # In past 100 (wait for 95); out past 110 is held back; 95 re-arms; in again fires.
    prices = ["99", "101", "111", "96", "95", "101"]
    assert _walk(evaluator, prices) == [(1, "enter"), (5, "enter")]


def test_the_hit_carries_the_wait_and_a_reload_keeps_it_until_the_price_ends_it() -> None:
    evaluator = Evaluator()
    evaluator.add(arm(_row(1, "price_cross", level="100", rearm_percent="2")))
    evaluator.evaluate(Ticker("BTC-USDT", Decimal("99")), T0)
    [hit] = evaluator.evaluate(Ticker("BTC-USDT", Decimal("101")), T0)
    assert hit.rule_state == {"rearm_at": "98.00", "falling": True}

    restarted = Evaluator()  # as loaded from the row that recorded the hit
    restarted.add(arm(_row(1, "price_cross", hit.rule_state, level="100", rearm_percent="2")))
    restarted.prices[("BTC-USDT", "last")] = Decimal("99")
    restarted.market.waiting.recheck(restarted.prices)
    assert restarted.market.waiting.rearmed == []  # 99 does not end the wait
    assert restarted.evaluate(Ticker("BTC-USDT", Decimal("101")), T0) == []
    restarted.prices[("BTC-USDT", "last")] = Decimal("97")
    restarted.market.waiting.recheck(restarted.prices)  # the last price persisted ends it
    assert restarted.market.waiting.rearmed == [1]
    restarted.evaluate(Ticker("BTC-USDT", Decimal("97")), T0)
    assert len(restarted.evaluate(Ticker("BTC-USDT", Decimal("101")), T0)) == 1


def test_rearm_needs_trigger_every() -> None:
    row = _row(1, "price_cross", level="100", rearm_percent="2")
    row["trigger"] = "once"
    assert arm(row).rearm is None  # stored rules are validated; the engine ignores it anyway


def test_the_wait_is_stored_with_the_hit_and_cleared_when_it_ends(database_url: str) -> None:
    upgrade(database_url)
    db = Database(database_url)
    user = add_user(db)
    params = {"symbol": "BTC-USDT", "level": "100", "rearm_percent": "2"}
    rule_id = add_rule(db, user, params=params, trigger="every", cooldown_seconds=0)
    evaluator = Evaluator()
    [armed] = list(load_rules(db))
    evaluator.add(armed)
    evaluator.evaluate(Ticker("BTC-USDT", Decimal("99")), T0)
    hits = evaluator.evaluate(Ticker("BTC-USDT", Decimal("101")), T0)
    record(db, hits, {}, {}, T0)
    [reloaded] = list(load_rules(db))
    assert reloaded.waiting == (Decimal("98.00"), True)
    clear_rule_states(db, [rule_id])
    [reloaded] = list(load_rules(db))
    assert reloaded.waiting is None and reloaded.rearm == Decimal("0.02")
    with db.session() as session:
        row = session.get(Rule, rule_id)
        assert row is not None and row.state is None
    db.dispose()


# --- the REST API ---------------------------------------------------------------------


def test_rearm_percent_is_for_every_on_price_rules(api: Api) -> None:
    alice = api.user("alice")
    body = {"kind": "price_cross", "symbol": "BTC-USDT", "level": "70000", "rearm_percent": "1"}
    r = api.client.post("/v1/rules", json=body, headers=alice)
    assert r.status_code == 422 and "rearm_percent: applies to trigger" in r.text
    made = api.create("/v1/rules", {**body, "trigger": "every"}, alice)
    assert made["rearm_percent"] == "1"
    ranged = {"kind": "price_range", "symbol": "BTC-USDT", "low": "1", "high": "2"}
    api.create("/v1/rules", {**ranged, "trigger": "every", "rearm_percent": "0.5"}, alice)
    moved = {"kind": "percent_change", "symbol": "BTC-USDT", "percent": "5", "window_seconds": 60}
    r = api.client.post("/v1/rules", json={**moved, "rearm_percent": "1"}, headers=alice)
    assert r.status_code == 422
    with api.db.session() as session:  # a stored wait...
        row = session.get(Rule, made["id"])
        assert row is not None
        row.state = {"rearm_at": "69300", "falling": True}
        session.add(row)
        session.commit()
    r = api.client.patch(f"/v1/rules/{made['id']}", json={"level": "71000"}, headers=alice)
    assert r.status_code == 200 and r.json()["rearm_percent"] == "1"
    with api.db.session() as session:  # ...is gone once the rule changes
        row = session.get(Rule, made["id"])
        assert row is not None and row.state is None


async def test_the_recorder_clears_what_re_armed_unless_it_fired_again(database_url: str) -> None:
    upgrade(database_url)
    db = Database(database_url)
    user = add_user(db)
    params = {"symbol": "BTC-USDT", "level": "100", "rearm_percent": "2"}
    rearmed, fired_again = (
        add_rule(db, user, params=params, trigger="every", state={"rearm_at": "98", "falling": 1})
        for _ in range(2)
    )
    recorder = Recorder(db, lambda _: {}, lambda: T0, interval=3600, retry_delay=0.01)
    recorder.rearmed([rearmed, fired_again])
    # `fired_again` fired after it re-armed: its new wait is newer than the clearing.
    evaluator = Evaluator()
    evaluator.add(arm(_row(fired_again, "price_cross", level="100", rearm_percent="2")))
    evaluator.evaluate(Ticker("BTC-USDT", Decimal("99")), T0)
    hits = evaluator.evaluate(Ticker("BTC-USDT", Decimal("101")), T0)
    recorder.add(hits)
    await recorder.flush()
    with db.session() as session:
        states = {r: session.get(Rule, r).state for r in (rearmed, fired_again)}  # type: ignore[union-attr]
    assert states == {rearmed: None, fired_again: {"rearm_at": "98.00", "falling": True}}
    db.dispose()
