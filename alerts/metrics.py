"""Prometheus metrics, one `Metrics` per process on a registry of its own: whoever assembles
the process makes it and hands it to the engine, the delivery worker and the API, which
serves it on `/metrics`.

Counters the hot path would pay for on every push (pushes per channel, unparseable frames,
reconnects, evaluation time, rules loaded) are not incremented there: a collector reads them
from the feed clients' and engines' own counters at scrape time. Deliveries and firings, a
few hundred a second at most, use ordinary counters."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from alerts.feed.state import FeedState


class Observed(Protocol):
    """What an engine shows the collector."""

    def feed_states(self) -> Iterable[FeedState]:
        """Its feed connections."""
        ...

    @property
    def rules_loaded(self) -> int:
        """Rules armed now."""
        ...

    @property
    def evaluations(self) -> tuple[int, float]:
        """Pushes evaluated so far, and the seconds that took."""
        ...

    @property
    def health(self) -> EngineHealth:
        """Its errors so far: rules skipped, writes failed, dead letters."""
        ...


class EngineHealth(Protocol):
    """An engine's error counters (see `alerts.engine.runner.Engine.health`)."""

    @property
    def rules_skipped(self) -> int: ...

    @property
    def recorder_failures(self) -> int: ...

    @property
    def dead_lettered(self) -> int: ...

    @property
    def failing_for(self) -> float: ...


class _Collector(Collector):
    def __init__(self) -> None:
        self.engines: weakref.WeakSet[Observed] = weakref.WeakSet()
        self.queue_depth: Callable[[], int] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | SummaryMetricFamily]:
        pushes = CounterMetricFamily(
            "alerts_pushes",
            "Pushes received, by connection and channel.",
            labels=["connection", "channel"],
        )
        bad = CounterMetricFamily(
            "alerts_pushes_unparseable",
            "Pushes and frames that could not be understood, by connection and channel.",
            labels=["connection", "channel"],
        )
        refused = CounterMetricFamily(
            "alerts_pushes_refused",
            "Pushes (or elements of list pushes) refused, by connection, channel and reason.",
            labels=["connection", "channel", "reason"],
        )
        reconnects = CounterMetricFamily(
            "alerts_feed_reconnects", "Connections made after the first.", labels=["connection"]
        )
        connected = GaugeMetricFamily(
            "alerts_feed_connected", "1 while the connection is up.", labels=["connection"]
        )
        age = GaugeMetricFamily(
            "alerts_feed_last_message_age_seconds",
            "Seconds since the connection's last message.",
            labels=["connection"],
        )
        rules = GaugeMetricFamily("alerts_rules_loaded", "Rules armed in the engine.")
        evaluation = SummaryMetricFamily(
            "alerts_evaluation_seconds", "Time spent evaluating pushes against rules."
        )
        skipped = CounterMetricFamily(
            "alerts_rules_skipped", "Rule evaluations skipped because they raised an error."
        )
        failures = CounterMetricFamily(
            "alerts_recorder_failures", "Writes of hits, prices or balances that failed."
        )
        dead = CounterMetricFamily(
            "alerts_dead_letters", "Hits, prices and balances that could not be recorded."
        )
        failing = GaugeMetricFamily(
            "alerts_recording_failing_seconds", "How long recording has been failing (0: not)."
        )
        loaded, count, seconds = 0, 0, 0.0
        n_skipped = n_failures = n_dead = 0
        failing_for = 0.0
        for engine in list(self.engines):
            loaded += engine.rules_loaded
            health = engine.health
            n_skipped += health.rules_skipped
            n_failures += health.recorder_failures
            n_dead += health.dead_lettered
            failing_for = max(failing_for, health.failing_for)
            n, s = engine.evaluations
            count, seconds = count + n, seconds + s
            for state in engine.feed_states():
                reconnects.add_metric([state.name], state.reconnects)
                connected.add_metric([state.name], 1.0 if state.connected else 0.0)
                if state.last_message_age is not None:
                    age.add_metric([state.name], state.last_message_age)
                unknown = state.invalid_frames
                for channel, stats in state.channels.items():
                    pushes.add_metric([state.name, channel], stats.pushes)
                    bad.add_metric([state.name, channel], stats.unparseable)
                    for reason, n in stats.refused.items():
                        refused.add_metric([state.name, channel, reason], n)
                bad.add_metric([state.name, "frame"], unknown)
        rules.add_metric([], loaded)
        evaluation.add_metric([], count, seconds)
        skipped.add_metric([], n_skipped)
        failures.add_metric([], n_failures)
        dead.add_metric([], n_dead)
        failing.add_metric([], failing_for)
        yield from (pushes, bad, refused, reconnects, connected, age, rules, evaluation)
        yield from (skipped, failures, dead, failing)
        if self.queue_depth is not None:
            depth = GaugeMetricFamily(
                "alerts_delivery_queue_depth", "Deliveries waiting to be sent."
            )
            depth.add_metric([], self.queue_depth())
            yield depth


class Metrics:
    """One process's metrics: its counters, the engines and queue it watches, its registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.firings = Counter(
            "alerts_firings", "Rules that fired, by kind.", ["kind"], registry=self.registry
        )
        self.deliveries = Counter(
            "alerts_deliveries",
            "Delivery attempts, by target and outcome.",
            ["target", "outcome"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "alerts_delivery_latency_seconds",
            "From a rule firing to its message being sent.",
            ["target"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
            registry=self.registry,
        )
        # What prometheus_client's global registry would have shown: the process's memory,
        # CPU and file descriptors, the Python version, the garbage collector.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._collector = _Collector()
        self.registry.register(self._collector)

    def watch_engine(self, engine: Observed) -> None:
        """Include this engine's feeds and evaluation in the metrics (until it is gone)."""
        self._collector.engines.add(engine)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Report the delivery queue's depth, asked at each scrape."""
        self._collector.queue_depth = depth

    @contextlib.contextmanager
    def served(self, listen: tuple[str, int] | None) -> Iterator[None]:
        """This registry on http://host:port/metrics for the block (prometheus_client's own
        server, in a thread), for the roles without an API to serve it; nothing if None."""
        if listen is None:
            yield
            return
        server, thread = start_http_server(listen[1], addr=listen[0], registry=self.registry)
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)

    def exposition(self) -> bytes:
        """Everything in the registry, in Prometheus's text format."""
        return generate_latest(self.registry)
