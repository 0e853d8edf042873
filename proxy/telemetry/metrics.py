"""Prometheus metrics on a registry the app owns (never the global one), with Istio-style labels.

Usage: m = Metrics(sink); m.observe(experiment, variant, 200, 0.012); text = m.render()
Outcome counters are read from the sink at scrape time in one go, so the invariant
`produced == stored + pending + dropped` holds exactly in every scrape.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from experiments.sink import OutcomeSink
from proxy.telemetry.request_meter import RequestMeter
from shadow.dispatch import ShadowDispatcher

if TYPE_CHECKING:
    pass


class OutcomeCollector(Collector):
    """Reads the sink's counters at collect time."""

    def __init__(self, sink: OutcomeSink) -> None:
        self.sink = sink

    def collect(self) -> Iterator[Any]:
        """Yield the outcome families from one consistent snapshot."""
        snap = self.sink.snapshot()
        produced = CounterMetricFamily("outrider_outcomes_produced", "Outcome records produced")
        produced.add_metric([], float(snap["produced"]))  # type: ignore[arg-type]
        stored = CounterMetricFamily("outrider_outcomes_stored", "Outcome records durably stored")
        stored.add_metric([], float(snap["stored"]))  # type: ignore[arg-type]
        pending = GaugeMetricFamily("outrider_outcomes_pending", "Outcome records queued or being written")
        pending.add_metric([], float(snap["pending"]))  # type: ignore[arg-type]
        dropped = CounterMetricFamily(
            "outrider_outcomes_dropped", "Outcome records dropped", labels=["reason"]
        )
        drops: dict[str, int] = snap["dropped"]  # type: ignore[assignment]
        for reason in (
            "queue_full",
            "write_error",
            "shutdown",
            *sorted(set(drops) - {"queue_full", "write_error", "shutdown"}),
        ):
            dropped.add_metric([reason], float(drops.get(reason, 0)))
        yield from (produced, stored, pending, dropped)


class ShadowCollector(Collector):
    """The shadow dispatcher's counters at collect time (eligible == enqueued + dropped + sampled_out)."""

    def __init__(self, dispatcher: ShadowDispatcher) -> None:
        self.dispatcher = dispatcher

    def collect(self) -> Iterator[Any]:
        """Yield the shadow families from one consistent read."""
        d = self.dispatcher
        for name, value in (
            ("eligible", d.eligible),
            ("enqueued", d.enqueued),
            ("sampled_out", d.sampled_out),
        ):
            family = CounterMetricFamily(f"outrider_shadow_{name}", f"Shadow copies {name.replace('_', ' ')}")
            family.add_metric([], float(value))
            yield family
        dropped = CounterMetricFamily("outrider_shadow_dropped", "Shadow copies dropped", labels=["reason"])
        for reason in sorted({"queue_full", "body_too_large", "circuit_open", "shutdown", *d.dropped}):
            dropped.add_metric([reason], float(d.dropped.get(reason, 0)))
        yield dropped
        results = CounterMetricFamily("outrider_shadow_results", "Shadow calls by result", labels=["result"])
        for result, count in sorted(d.results.items()):
            results.add_metric([result], float(count))
        yield results
        depth = GaugeMetricFamily("outrider_shadow_queue_depth", "Shadow copies waiting for a worker")
        depth.add_metric([], float(d.depth))
        yield depth
        high = GaugeMetricFamily("outrider_shadow_queue_depth_max", "Deepest the shadow queue has been")
        high.add_metric([], float(d.max_depth))
        yield high


class Metrics:
    """The sidecar's metrics."""

    def __init__(self, sink: OutcomeSink | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.meter = RequestMeter()
        self.registry.register(self.meter)
        self.observe = self.meter.observe
        """Count one answered request and its duration (the meter's own method: no call in between)."""
        self.upstream_errors = Counter(
            "outrider_upstream_errors",
            "Upstream failures by class",
            ("experiment", "destination_version", "error"),
            registry=self.registry,
        )
        self.feedback = Counter(
            "outrider_feedback", "Feedback posts by result", ("result",), registry=self.registry
        )
        self.decisions = Counter(
            "outrider_decisions",
            "Decisions of the controller that change an experiment",
            ("experiment", "decision"),
            registry=self.registry,
        )
        self.internal_errors = Counter(
            "outrider_internal_errors", "Bugs: exceptions outrider did not expect", registry=self.registry
        )
        self.connections_open = Gauge(
            "outrider_connections_open", "Client connections open on the data port", registry=self.registry
        )
        self.connections_refused = Counter(
            "outrider_connections_refused",
            "Client connections closed at once because max_connections were open",
            registry=self.registry,
        )
        self.slow_clients_closed = Counter(
            "outrider_slow_clients_closed",
            "Connections closed for a header block over the header timeout or a body under the minimum rate",
            ("phase",),
            registry=self.registry,
        )
        for phase in ("header", "body"):  # both series exist from the start: a scrape shows 0, not nothing
            self.slow_clients_closed.labels(phase)
        if sink is not None:
            self.attach_sink(sink)

    def attach_shadows(self, dispatcher: ShadowDispatcher) -> None:
        """Expose the shadow dispatcher's counters."""
        self.registry.register(ShadowCollector(dispatcher))

    def attach_sink(self, sink: OutcomeSink) -> None:
        """Expose the sink's outcome counters."""
        self.registry.register(OutcomeCollector(sink))

    async def refresh(self) -> None:
        """Bring what is read from other processes up to date before a read (proxy.fleet: the workers'
        metrics); one process has nothing to refresh."""

    def request_families(self) -> Iterable[Metric]:
        """The `outrider_requests` family (the admin API counts requests per variant in it)."""
        return [self.meter.requests()]

    def render(self) -> bytes:
        """Prometheus text exposition of everything."""
        return generate_latest(self.registry)
