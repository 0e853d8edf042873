"""Sum the Prometheus text of several processes into one exposition, as one process would show it.

Usage:
    total = parse(own_text); add(total, parse(worker_text), skip={"outrider_ready"}); body = render(total)
    add(retired, retired_part(last_snapshot_of_a_lost_worker))
Samples with the same name and labels are summed (counters, histogram buckets, counts and sums, gauges);
`*_created` keeps the oldest. `retired_part` keeps what must never go backwards — counters and histograms —
and counts the outcomes a lost worker still had pending as dropped (`reason="worker_lost"`), so that
`produced == stored + pending + dropped` still holds across the workers.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

Key = tuple[str, tuple[tuple[str, str], ...]]
"""A sample's name and its labels, in the order the process wrote them (the same code, the same order)."""
MONOTONIC = frozenset({"counter", "histogram", "summary"})
LOST_REASON = "worker_lost"


@dataclass
class Family:
    """One metric family: its type and every sample by name and labels."""

    name: str
    documentation: str
    kind: str
    samples: dict[Key, float] = field(default_factory=dict)

    def copy(self) -> Family:
        """An independent copy."""
        return Family(self.name, self.documentation, self.kind, dict(self.samples))

    def metric(self) -> Metric:
        """As prometheus_client's Metric (for rendering, and readers of `collect()`)."""
        out = Metric(self.name, self.documentation, self.kind)
        out.samples = [Sample(name, dict(labels), value) for (name, labels), value in self.samples.items()]
        return out


Snapshot = dict[str, Family]
"""Families by name."""


def parse(text: str) -> Snapshot:
    """The families of a /metrics text."""
    out: Snapshot = {}
    for metric in text_string_to_metric_families(text):
        family = out.setdefault(metric.name, Family(metric.name, metric.documentation, metric.type))
        for sample in metric.samples:
            family.samples[sample.name, tuple(sample.labels.items())] = sample.value
    return out


def add(into: Snapshot, other: Snapshot, skip: Collection[str] = ()) -> None:
    """Add `other`'s samples to `into`'s (families named in `skip` are left out)."""
    for name, family in other.items():
        if name in skip:
            continue
        mine = into.get(name)
        if mine is None:
            into[name] = family.copy()
            continue
        oldest = name.endswith("_created")
        for key, value in family.samples.items():
            have = mine.samples.get(key)
            if have is None:
                mine.samples[key] = value
            else:
                mine.samples[key] = min(have, value) if oldest else have + value


def retired_part(last: Snapshot) -> Snapshot:
    """What a lost worker keeps contributing: its counters and histograms as last seen, and its pending
    outcomes as dropped (lost with the process, as far as anyone can tell)."""
    kept = {name: family.copy() for name, family in last.items() if family.kind in MONOTONIC}
    pending = last.get("outrider_outcomes_pending")
    lost = sum(pending.samples.values()) if pending is not None else 0.0
    if lost:
        dropped = kept.setdefault(
            "outrider_outcomes_dropped",
            Family("outrider_outcomes_dropped", "Outcome records dropped", "counter"),
        )
        key: Key = ("outrider_outcomes_dropped_total", (("reason", LOST_REASON),))
        dropped.samples[key] = dropped.samples.get(key, 0.0) + lost
    return kept


class _Families(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        for family in self.snapshot.values():
            yield family.metric()


def render(snapshot: Snapshot) -> bytes:
    """Prometheus text exposition of `snapshot`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(snapshot))
    return generate_latest(registry)
