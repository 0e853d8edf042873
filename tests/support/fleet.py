"""Helpers for tests of `outrider run --workers N`: the workers a supervisor started and their private metrics
(`eventually`, waiting on a condition with a deadline, is in `tests.support.wait`).

Usage: workers = started_workers(proc); samples = await scrape(session, workers[0].admin_url)
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.procs import Proc
from tests.support.wait import eventually

__all__ = ["MONOTONIC_SUFFIXES", "Started", "eventually", "monotonic_samples", "started_workers", "summed"]
MONOTONIC_SUFFIXES = ("_total", "_bucket", "_count", "_sum")


@dataclass(frozen=True)
class Started:
    """A worker as its supervisor logged it (`worker started`)."""

    index: int
    pid: int
    admin: str

    @property
    def admin_url(self) -> str:
        """http://HOST:PORT of its private admin port."""
        return f"http://{self.admin}"


def started_workers(proc: Proc) -> dict[int, Started]:
    """The latest worker started in each position, by index."""
    out: dict[int, Started] = {}
    for item in proc.log_lines():
        if item.get("event") == "worker started":
            out[int(item["worker"])] = Started(int(item["worker"]), int(item["pid"]), str(item["admin"]))
    return out


def monotonic_samples(samples: dict[str, float], prefix: str = "") -> dict[str, float]:
    """The counter and histogram samples of a scrape (those that must never go down), named `prefix...`."""
    return {
        key: value
        for key, value in samples.items()
        if key.startswith(prefix) and key.split("{", 1)[0].endswith(MONOTONIC_SUFFIXES)
    }


def summed(scrapes: list[dict[str, float]]) -> dict[str, float]:
    """Sample by sample sums of several scrapes."""
    total: dict[str, float] = {}
    for samples in scrapes:
        for key, value in samples.items():
            total[key] = total.get(key, 0.0) + value
    return total
