"""The request meter writes what prometheus-client's own Counter and Histogram would for the same answers
(names, labels, `le` bounds, counts, sums), so dashboards and alerts see no difference."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from proxy.telemetry.request_meter import LABELS, LATENCY_BUCKETS, RequestMeter


def without_created(text: bytes) -> list[str]:
    return sorted(line for line in text.decode().splitlines() if "_created" not in line)


def test_the_exposition_is_prometheus_clients() -> None:
    reference = CollectorRegistry()
    count = Counter("outrider_requests", "Requests answered by the data port", LABELS, registry=reference)
    seconds = Histogram(
        "outrider_request_duration_seconds",
        "Time from request received to response ready",
        LABELS,
        buckets=LATENCY_BUCKETS,
        registry=reference,
    )
    ours = CollectorRegistry()
    meter = RequestMeter()
    ours.register(meter)
    rng = random.Random(1)
    for _ in range(3000):
        labels = (
            rng.choice(["canary", ""]),
            rng.choice(["stable", "candidate"]),
            rng.choice([200, 404, 502]),
        )
        duration = rng.choice([*LATENCY_BUCKETS, 0.0, rng.random() * 40])  # on every bound, and between
        count.labels(*labels[:2], str(labels[2])).inc()
        seconds.labels(*labels[:2], str(labels[2])).observe(duration)
        meter.observe(*labels, duration)
    assert without_created(generate_latest(ours)) == without_created(generate_latest(reference))
    created = [line for line in generate_latest(ours).decode().splitlines() if line.startswith("outrider_")]
    assert sum("_created{" in line for line in created) == 2 * 12  # one per series of each family
