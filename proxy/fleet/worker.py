"""A worker's end of its link with the supervisor (`outrider run --worker-of PID`, started by proxy.fleet).

Usage: link = WorkerLink(supervisor_pid, index); link.bind() (first thing); link.announce(address, admin)
A worker dies with its supervisor (Linux: PR_SET_PDEATHSIG delivers SIGTERM, so it still drains and flushes
its outcomes), says once on stdout (the supervisor's pipe) where it listens, and reports its dropped outcomes
per variant, which the supervisor's controllers need (`VariantDrops`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from experiments.sink import OutcomeSink

ANNOUNCE = "outrider_worker"
"""Key of the one JSON line a worker writes on stdout once it listens."""
DROPS_BY_VARIANT = "outrider_outcomes_dropped_by_variant"
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class WorkerLink:
    """Who started this worker, and which of its workers this is."""

    supervisor_pid: int
    index: int

    def bind(self) -> bool:
        """Have the kernel SIGTERM this process when the supervisor dies; False if it is already gone."""
        if sys.platform == "linux":
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        return os.getppid() == self.supervisor_pid  # checked after prctl: no window left

    def announce(self, address: str, admin: str) -> None:
        """Say where this worker listens (one line on stdout, the supervisor's pipe), then close the pipe
        (stdout becomes stderr): no process this one starts later can hold it open."""
        doc = {"index": self.index, "pid": os.getpid(), "address": address, "admin": admin}
        out = sys.stdout.fileno()
        os.write(out, orjson.dumps({ANNOUNCE: doc}) + b"\n")
        os.dup2(sys.stderr.fileno(), out)


def announcement(line: bytes) -> dict[str, Any] | None:
    """The worker's announcement in a line of its stdout, or None."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    found = doc.get(ANNOUNCE) if isinstance(doc, dict) else None
    return found if isinstance(found, dict) else None


class VariantDrops(Collector):
    """`outrider_outcomes_dropped_by_variant{experiment, variant}`: the sink's drops per arm, when scraped."""

    def __init__(self, sink: OutcomeSink) -> None:
        self.sink = sink

    def collect(self) -> Iterator[Any]:
        """Yield the family."""
        family = CounterMetricFamily(
            DROPS_BY_VARIANT,
            "Outcome records dropped, per experiment and variant",
            labels=["experiment", "variant"],
        )
        for (experiment, variant), count in sorted(self.sink.dropped_by_variant.items()):
            family.add_metric([experiment, variant], float(count))
        yield family
