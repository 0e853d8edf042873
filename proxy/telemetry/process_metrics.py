"""Process health on the app's registry: memory, open fds, CPU (prometheus' ProcessCollector) and the number
of asyncio tasks alive, read at scrape time; the garbage collector's runs (prometheus' GCCollector).
A soak run watches these for leaks.

Usage: `register_process_metrics(metrics.registry)` once, from inside the running loop's process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class TaskCollector(Collector):
    """`outrider_asyncio_tasks`: tasks alive on the running loop (0 when scraped from outside a loop)."""

    def collect(self) -> Iterator[Any]:
        """Yield the task gauge."""
        try:
            count = len(asyncio.all_tasks())
        except RuntimeError:
            count = 0
        family = GaugeMetricFamily("outrider_asyncio_tasks", "asyncio tasks alive in the sidecar")
        family.add_metric([], float(count))
        yield family


def register_process_metrics(registry: CollectorRegistry) -> None:
    """process_resident_memory_bytes, process_open_fds, process_cpu_seconds_total, python_gc_* (collections
    per generation: proxy.runtime.gc_tuning), outrider_asyncio_tasks."""
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(TaskCollector())
