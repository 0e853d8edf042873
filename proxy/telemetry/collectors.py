"""Collectors read at scrape time from the parts they describe: live experiment state (readiness, phase,
step, weights, SRM flag, shadow agreement), webhook deliveries, plain counters kept on objects (JWKS
fetches, retries) and the shared rate-limit store.

Usage: `metrics.registry.register(LiveCollector(router, lambda: sidecar.ready, judging.analysis_of))`
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from proxy.control.webhook import ATTEMPT_RESULTS, DELIVERY_RESULTS
from proxy.ratelimit.shared import DECISION_BUCKETS, RedisLimiterStore
from proxy.upstream.pool import UpstreamPool

if TYPE_CHECKING:
    from proxy.control.router import Router
    from proxy.control.webhook import Webhook


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


class UpstreamPoolCollector(Collector):
    """The upstream connection pool at collect time (nothing counted on the request path but three ints).

    Usage: metrics.registry.register(UpstreamPoolCollector(pool))
    """

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Any]:
        """Connections by event (opened, reused, expired) and the idle ones now."""
        pool = self.pool
        events = CounterMetricFamily(
            "outrider_upstream_connections",
            "Upstream connections: opened, reused for a request, expired (closed idle and unused)",
            labels=["event"],
        )
        for event, count in (("opened", pool.connects), ("reused", pool.reuses), ("expired", pool.expired)):
            events.add_metric([event], float(count))
        yield events
        yield GaugeMetricFamily(
            "outrider_upstream_connections_idle", "Idle keep-alive upstream connections", pool.idle_count()
        )


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
