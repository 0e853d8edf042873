"""`outrider_requests_total` and `outrider_request_duration_seconds`, counted on the request path in plain
lists — a dict lookup, a bisect and two adds per answer, no lock (only the event loop's thread counts) — and
turned into the two families when scraped, with the names, labels, buckets and `_created` samples that
prometheus-client's Counter and Histogram would give.

Usage: meter = RequestMeter(); registry.register(meter); meter.observe("exp", "stable", 200, 0.012)
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LABELS = ("experiment", "destination_version", "response_code")
_LE = [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]  # as prometheus-client writes `le` (1.0, 0.0025)


class RequestMeter(Collector):
    """Answers of the data port by experiment, variant and status, and their durations."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str, int], list[float]] = {}
        """Per series: a count per bucket (not cumulative; the last one above every bound), then the sum."""
        self._created: dict[tuple[str, str, int], float] = {}

    def observe(self, experiment: str, variant: str, status: int, seconds: float) -> None:
        """Count one answer and its duration."""
        key = (experiment, variant, status)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
            self._created[key] = time.time()
        cell[bisect_left(LATENCY_BUCKETS, seconds)] += 1.0  # `le` is inclusive, as bisect_left finds it
        cell[-1] += seconds

    def requests(self) -> CounterMetricFamily:
        """The `outrider_requests` family."""
        family = CounterMetricFamily("outrider_requests", "Requests answered by the data port", labels=LABELS)
        for key, cell in list(self._cells.items()):
            family.add_metric(_labels(key), sum(cell[:-1]), created=self._created[key])
        return family

    def collect(self) -> Iterator[Any]:
        """Both families, from one pass over the series."""
        yield self.requests()
        family = HistogramMetricFamily(
            "outrider_request_duration_seconds", "Time from request received to response ready", labels=LABELS
        )
        for key, cell in list(self._cells.items()):
            labels = _labels(key)
            family.add_metric(labels, list(zip(_LE, accumulate(cell[:-1]), strict=True)), cell[-1])
            named = dict(zip(LABELS, labels, strict=True))
            family.samples.append(Sample(f"{family.name}_created", named, self._created[key]))
        yield family


def _labels(key: tuple[str, str, int]) -> list[str]:
    return [key[0], key[1], str(key[2])]
