"""Prometheus metrics on a registry the app owns (never the global one), with Istio-style labels.

Usage: m = Metrics(sink); m.observe(experiment, variant, 200, 0.012); text = m.render()
Outcome counters are read from the sink at scrape time in one go, so the invariant
`produced == stored + pending + dropped` holds exactly in every scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from experiments.sink import OutcomeSink
from proxy.limits_redis import DECISION_BUCKETS, RedisLimiterStore
from proxy.webhook import ATTEMPT_RESULTS, DELIVERY_RESULTS
from shadow.dispatch import ShadowDispatcher

if TYPE_CHECKING:
    from proxy.router import Router
    from proxy.webhook import Webhook

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LABELS = ("experiment", "destination_version", "response_code")


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
        self.requests = Counter(
            "outrider_requests", "Requests answered by the data port", LABELS, registry=self.registry
        )
        self.duration = Histogram(
            "outrider_request_duration_seconds",
            "Time from request received to response ready",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
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
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def attach_shadows(self, dispatcher: ShadowDispatcher) -> None:
        """Expose the shadow dispatcher's counters."""
        self.registry.register(ShadowCollector(dispatcher))

    def attach_sink(self, sink: OutcomeSink) -> None:
        """Expose the sink's outcome counters."""
        self.registry.register(OutcomeCollector(sink))

    def observe(self, experiment: str, variant: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        key = (experiment, variant, str(status))
        child = self._children.get(key)
        if child is None:
            child = (self.requests.labels(*key), self.duration.labels(*key))
            self._children[key] = child
        child[0].inc()
        child[1].observe(seconds)

    def render(self) -> bytes:
        """Prometheus text exposition of everything."""
        return generate_latest(self.registry)


PHASES = ("shadowing", "progressing", "paused", "promoted", "rolled_back")


class LiveCollector(Collector):
    """What the sidecar is doing right now, read at scrape time: readiness, each experiment's phase, step and
    weights, and from the controller's last look the SRM flag and each shadow's agreement.

    Usage: metrics.registry.register(LiveCollector(router, lambda: sidecar.ready, sidecar.analysis_of))
    """

    def __init__(
        self,
        router: Router,
        ready: Callable[[], bool],
        analysis_of: Callable[[str], Mapping[str, Any] | None] = lambda name: None,
    ) -> None:
        self.router, self.ready, self.analysis_of = router, ready, analysis_of

    def collect(self) -> Iterator[Any]:
        """Yield the live families (every family always, so dashboards and alerts see 0, not nothing)."""
        ready = GaugeMetricFamily("outrider_ready", "1 while the sidecar accepts traffic (0 while draining)")
        ready.add_metric([], 1.0 if self.ready() else 0.0)
        yield ready
        weight = GaugeMetricFamily(
            "outrider_experiment_weight",
            "Percent of traffic per serving variant",
            labels=["experiment", "variant"],
        )
        phase = GaugeMetricFamily(
            "outrider_experiment_phase",
            "1 for the phase in force, 0 for the others",
            labels=["experiment", "phase"],
        )
        step = GaugeMetricFamily(
            "outrider_experiment_step", "Canary step index in force", labels=["experiment"]
        )
        srm = GaugeMetricFamily(
            "outrider_srm_flagged",
            "1 once the sample ratio mismatch test flagged (latched)",
            labels=["experiment"],
        )
        agreement = GaugeMetricFamily(
            "outrider_shadow_agreement",
            "Share of compared pairs where the shadow agreed with the primary (last look)",
            labels=["experiment", "variant"],
        )
        for live in self.router.all():
            name, state = live.experiment.name, live.state
            for variant in live.experiment.serving:
                weight.add_metric([name, variant.name], float(state.weights.get(variant.name, 0.0)))
            for p in PHASES:
                phase.add_metric([name, p], 1.0 if state.phase == p else 0.0)
            step.add_metric([name], float(state.step))
            snapshot = (self.analysis_of(name) or {}).get("snapshot") or {}
            srm.add_metric([name], 1.0 if (snapshot.get("srm") or {}).get("flagged") else 0.0)
            for variant_name, verdict in sorted((snapshot.get("shadow") or {}).items()):
                estimate = (verdict.get("agreement") or {}).get("estimate")
                if estimate is not None:
                    agreement.add_metric([name, variant_name], float(estimate))
        yield from (weight, phase, step, srm, agreement)


class WebhookCollector(Collector):
    """The decision webhook's counters at collect time (offered == delivered+failed+dropped+shutdown+pending).

    Usage: metrics.registry.register(WebhookCollector(webhook))
    """

    def __init__(self, webhook: Webhook) -> None:
        self.webhook = webhook

    def collect(self) -> Iterator[Any]:
        """Yield deliveries by result, attempts by result, and the pending gauge."""
        hook = self.webhook
        deliveries = CounterMetricFamily(
            "outrider_webhook_deliveries", "Decision events by final result", labels=["result"]
        )
        for result in (*DELIVERY_RESULTS, *sorted(set(hook.deliveries) - set(DELIVERY_RESULTS))):
            deliveries.add_metric([result], float(hook.deliveries.get(result, 0)))
        attempts = CounterMetricFamily(
            "outrider_webhook_attempts", "Webhook HTTP attempts by result", labels=["result"]
        )
        for result in (*ATTEMPT_RESULTS, *sorted(set(hook.attempts) - set(ATTEMPT_RESULTS))):
            attempts.add_metric([result], float(hook.attempts.get(result, 0)))
        pending = GaugeMetricFamily("outrider_webhook_pending", "Decision events queued or being delivered")
        pending.add_metric([], float(hook.pending))
        yield from (deliveries, attempts, pending)


class CountsCollector(Collector):
    """One counter family read at collect time from a `{label value: count}` dict its owner keeps.

    Usage: metrics.registry.register(CountsCollector("outrider_jwks_fetch", "JWKS fetches", "result", counts))
    """

    def __init__(self, name: str, documentation: str, label: str, counts: Mapping[str, int]) -> None:
        self.name, self.documentation, self.label, self.counts = name, documentation, label, counts

    def collect(self) -> Iterator[Any]:
        """Yield the family; every label value the owner pre-seeded shows, 0 included."""
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, count in list(self.counts.items()):
            family.add_metric([value], float(count))
        yield family


class LimiterStoreCollector(Collector):
    """A shared rate-limit store at collect time: calls by result, decisions made without it by fallback mode,
    whether its breaker is open, and how long decisions took.

    Usage: metrics.registry.register(LimiterStoreCollector(redis_store))
    """

    def __init__(self, store: RedisLimiterStore, name: str = "redis") -> None:
        self.store, self.name = store, name

    def collect(self) -> Iterator[Any]:
        """Yield every family, every label value included (0 too)."""
        store, name = self.store, self.name
        calls = CounterMetricFamily(
            "outrider_ratelimit_store", "Rate-limit store calls", labels=["store", "result"]
        )
        for result, count in list(store.results.items()):
            calls.add_metric([name, result], float(count))
        yield calls
        yield from CountsCollector(
            "outrider_ratelimit_fallback",
            "Rate-limit decisions made without the store",
            "mode",
            store.fallbacks,
        ).collect()
        breaker = GaugeMetricFamily(
            "outrider_ratelimit_breaker_open", "1 while the breaker is open", labels=["store"]
        )
        breaker.add_metric([name], 1.0 if store.breaker_open else 0.0)
        yield breaker
        seconds = HistogramMetricFamily(
            "outrider_ratelimit_decision_seconds", "Time to decide, fallback included", labels=["store"]
        )
        cumulative = list(accumulate(store.decision_counts))
        bounds = [*(f"{b:g}" for b in DECISION_BUCKETS), "+Inf"]
        seconds.add_metric(
            [name], [(b, float(n)) for b, n in zip(bounds, cumulative, strict=True)], store.decision_sum
        )
        yield seconds
