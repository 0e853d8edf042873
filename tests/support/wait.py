"""Waiting on a condition, never for a fixed time: poll a predicate until it holds, or fail at a deadline.

A test that sleeps "long enough" is slow on a fast machine and flaky on a busy one; these return as soon as
the condition holds and say what was last seen when it never does.
Usage: `await wait_until(lambda: len(server.seen) == 3, 5.0)`; `row = await eventually(fetch_row, 10.0)`
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def wait_until(predicate: Callable[[], object], timeout: float = 10.0, every: float = 0.01) -> None:
    """Poll `predicate` (sync) every `every` seconds until it is truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(every)


def wait_until_sync(predicate: Callable[[], object], timeout: float = 10.0, every: float = 0.01) -> None:
    """`wait_until` for a thread that has no event loop (a subprocess test, a worker thread)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)


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
