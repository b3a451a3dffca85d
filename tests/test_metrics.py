"""Metrics live in an object with a registry of its own: two processes' worth in one test run
do not mix, an engine it watches shows at scrape time, and the API serves the one it is given."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from alerts.db.migrate import upgrade
from alerts.db.session import Database
from alerts.engine.runner import EngineHealth
from alerts.feed.state import FeedState
from alerts.metrics import Metrics
from api.app import create_app
from tests.api_helpers import make_settings


@dataclass(eq=False)  # hashable by identity, as the weak set of watched engines needs
class StubEngine:
    """What an engine shows the metrics (`alerts.metrics.Observed`), fixed."""

    states: list[FeedState] = field(default_factory=list)
    rules_loaded: int = 0
    evaluations: tuple[int, float] = (0, 0.0)
    health: EngineHealth = field(
        default_factory=lambda: EngineHealth(
            rules_skipped=0,
            recorder_failures=0,
            dead_lettered=0,
            failing_for=0.0,
            dead_letters_last_minute=0,
        )
    )

    def feed_states(self) -> Iterable[FeedState]:
        return self.states


def _samples(exposition: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
    }


def test_two_metrics_do_not_see_each_others_counts() -> None:
    one, other = Metrics(), Metrics()
    one.firings.labels("price_cross").inc()
    one.deliveries.labels("telegram", "sent").inc(2)
    one.delivery_latency.labels("telegram").observe(0.2)

    mine, theirs = _samples(one.exposition()), _samples(other.exposition())
    assert mine[("alerts_firings_total", frozenset({("kind", "price_cross")}))] == 1
    sent = frozenset({("target", "telegram"), ("outcome", "sent")})
    assert mine[("alerts_deliveries_total", sent)] == 2
    assert mine[("alerts_delivery_latency_seconds_count", frozenset({("target", "telegram")}))]
    assert not any(name.startswith(("alerts_firings", "alerts_deliver")) for name, _ in theirs)
    assert "python_info" in other.exposition().decode()  # the process's own, as before


def test_a_watched_engine_shows_in_the_exposition() -> None:
    state = FeedState(name="public", connected=True, connects=3)
    state.channel("ticker").pushes = 7
    engine = StubEngine(states=[state], rules_loaded=5, evaluations=(7, 0.5))
    metrics, unwatched = Metrics(), Metrics()
    metrics.watch_engine(engine)

    samples = _samples(metrics.exposition())
    ticker = frozenset({("connection", "public"), ("channel", "ticker")})
    assert samples[("alerts_pushes_total", ticker)] == 7
    assert samples[("alerts_feed_reconnects_total", frozenset({("connection", "public")}))] == 2
    assert samples[("alerts_feed_connected", frozenset({("connection", "public")}))] == 1
    assert samples[("alerts_rules_loaded", frozenset())] == 5
    assert samples[("alerts_evaluation_seconds_count", frozenset())] == 7
    assert _samples(unwatched.exposition())[("alerts_rules_loaded", frozenset())] == 0


def test_the_api_serves_the_metrics_it_was_given(database_url: str) -> None:
    upgrade(database_url)
    db = Database(database_url)
    metrics = Metrics()
    metrics.firings.labels("spread").inc(3)
    settings = make_settings(database_url, "ws://127.0.0.1:9")
    try:
        with TestClient(create_app(settings, db=db, metrics=metrics)) as client:
            r = client.get("/metrics")
    finally:
        db.dispose()
    assert r.status_code == 200
    samples = _samples(r.content)
    assert samples[("alerts_firings_total", frozenset({("kind", "spread")}))] == 3
    # The app watches the outbox's depth through the metrics it was handed.
    assert samples[("alerts_delivery_queue_depth", frozenset())] == 0
    assert ("alerts_delivery_queue_depth", frozenset()) not in _samples(Metrics().exposition())
