"""Helpers for tests of `outrider run --workers N`: the workers a supervisor started, their private metrics,
and waiting on a condition with a deadline.

Usage: workers = started_workers(proc); samples = await scrape(session, workers[0].admin_url)
       value = await eventually(lambda: check(...), seconds=10)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tests.support.procs import Proc

T = TypeVar("T")
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


async def eventually(check: Callable[[], Awaitable[T | None]], seconds: float = 10.0) -> T:
    """Poll `check` until it returns something other than None or False; AssertionError at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        got = await check()
        if got is not None and got is not False:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds}s (last: {got!r})")
        await asyncio.sleep(0.05)


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
