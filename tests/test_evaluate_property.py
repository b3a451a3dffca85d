"""The indexed evaluator against a brute-force reference on random price paths: the same
firings, in the same order, for price_cross and price_range under every trigger mode, with
and without re-arming (`rearm_percent`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.domain.events import Ticker
from alerts.engine.armed import arm
from alerts.engine.evaluate import Evaluator

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class RefRule:
    id: int
    kind: str
    a: Decimal
    b: Decimal | None
    mode: str
    every: bool
    cooldown: int
    rearm: Decimal | None = None  # percent
    last: float | None = None
    done: bool = False
    wait: tuple[Decimal, bool] | None = None  # (price to reach, falling to it)


def reference(rules: list[RefRule], path: list[tuple[int, Decimal]]) -> list[tuple[int, int, str]]:
    """Checks every rule on every step, straight from the contract's wording."""
    fired: list[tuple[int, int, str]] = []
    previous: Decimal | None = None
    for step, (t, price) in enumerate(path):
        if previous is not None:
            for r in rules:
                if r.wait is not None:
                    continue
                if r.done or (r.every and r.last is not None and t < r.last + r.cooldown):
                    continue
                what = None
                if r.kind == "price_cross":
                    if previous < r.a <= price:
                        what = "up"
                    elif price <= r.a < previous:
                        what = "down"
                    if what and r.mode not in ("any", what):
                        what = None
                else:
                    assert r.b is not None
                    was, now = r.a <= previous <= r.b, r.a <= price <= r.b
                    if was != now:
                        what = "enter" if now else "exit"
                        if r.mode not in ("any", what):
                            what = None
                if what:
                    fired.append((step, r.id, what))
                    r.last = t
                    r.done = not r.every
                    if r.rearm is not None and r.every:
                        # Back `rearm` percent past the edge crossed, the other way.
                        up = price > previous
                        edge = r.a if r.kind == "price_cross" or (what == "enter") == up else r.b
                        assert edge is not None
                        f = r.rearm / 100
                        r.wait = (edge * (1 - f), True) if up else (edge * (1 + f), False)
            for r in rules:  # after every rule's crossing: the push that fires never re-arms
                if r.wait is not None and price != previous:
                    at, falling = r.wait
                    if (price <= at) if falling else (price >= at):
                        r.wait = None
        previous = price
    return fired


prices = st.integers(min_value=90, max_value=110).map(Decimal)
cross_rules = st.tuples(
    st.just("price_cross"), prices, st.none(), st.sampled_from(["up", "down", "any"])
)
range_rules = st.tuples(
    st.just("price_range"),
    st.integers(90, 105).map(Decimal),
    st.integers(0, 6).map(Decimal),
    st.sampled_from(["enter", "exit", "any"]),
)
specs = st.lists(
    st.tuples(
        st.one_of(cross_rules, range_rules),
        st.booleans(),
        st.sampled_from([0, 1, 3]),
        st.sampled_from([None, Decimal(1), Decimal(5)]),
    ),
    min_size=1,
    max_size=25,
)
paths = st.lists(st.tuples(st.integers(0, 2), prices), min_size=2, max_size=40)


@settings(max_examples=300, deadline=None)
@given(specs, paths)
def test_indexed_evaluation_matches_brute_force(
    spec_list: list[tuple[tuple[str, Decimal, Decimal | None, str], bool, int, Decimal | None]],
    steps: list[tuple[int, Decimal]],
) -> None:
    ref_rules, evaluator = [], Evaluator()
    for i, ((kind, a, width, mode), every, cooldown, rearm) in enumerate(spec_list, start=1):
        b = None if width is None else a + width + 1
        params: dict[str, object] = {"symbol": "BTC-USDT"}
        if kind == "price_cross":
            params.update(level=str(a), direction=mode)
        else:
            params.update(low=str(a), high=str(b), on=mode)
        if rearm is not None:
            params["rearm_percent"] = str(rearm)
        row = {
            "id": i,
            "user_id": 1,
            "kind": kind,
            "params": params,
            "trigger": "every" if every else "once",
            "cooldown_seconds": cooldown,
            "expires_at": None,
            "snoozed_until": None,
            "last_fired_at": None,
        }
        evaluator.add(arm(row))
        ref_rules.append(RefRule(i, kind, a, b, mode, every, cooldown, rearm))

    path, t = [], 0
    for gap, price in steps:
        t += gap
        path.append((t, price))
    expected = reference(ref_rules, path)

    got = []
    for step, (t, price) in enumerate(path):
        hits = evaluator.evaluate(Ticker("BTC-USDT", price), T0 + timedelta(seconds=t))
        got += [(step, h.rule_id, h.values["direction"]) for h in hits]
    assert sorted(got) == sorted(expected)
