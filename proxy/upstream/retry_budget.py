"""A retry budget (Envoy/Finagle style): retries may be at most a share of recent requests, never a storm.

Usage: budget = RetryBudgets(ratio=0.2, minimum=3).of(upstream); budget.record_request(); budget.try_retry()

Over a sliding window (10 s by default) a retry is allowed while
`retries_in_window < max(minimum, ratio × requests_in_window)`. Retries do not count as requests, so a
dead upstream costs at most `ratio` extra connection attempts, plus `minimum` per window when traffic is
light. The window slides in steps of `resolution_s`, so memory stays bounded whatever the request rate.
Like Envoy's per-cluster budgets, each upstream has its own (`RetryBudgets`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

DEFAULT_WINDOW_S = 10.0
DEFAULT_RESOLUTION_S = 0.1


class RetryBudget:
    """Counts requests and retries in time slots and answers whether one more retry fits."""

    def __init__(
        self,
        ratio: float = 0.2,
        minimum: int = 3,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        resolution_s: float = DEFAULT_RESOLUTION_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"retry budget ratio must be within 0..1, got {ratio:g}")
        if minimum < 0:
            raise ValueError(f"retry budget minimum must be ≥ 0, got {minimum}")
        if not 0 < resolution_s <= window_s:
            raise ValueError("retry budget needs 0 < resolution_s ≤ window_s")
        self.ratio = ratio
        self.minimum = minimum
        self.resolution_s = resolution_s
        self.slots = math.ceil(window_s / resolution_s)
        """How many slots the window spans (the current one included)."""
        self.clock = clock
        self._slots: deque[list[int]] = deque()  # [slot index, requests, retries], oldest first
        self._requests = 0
        self._retries = 0
        self._slot_end = -math.inf
        """When the newest slot ends (slot arithmetic in floats: a time just below it is in that slot)."""

    def slot_of(self, now: float) -> int:
        """The slot a time falls into; the window at `now` is the `slots` slots ending with this one."""
        return math.floor(now / self.resolution_s)

    @property
    def requests_in_window(self) -> int:
        """Requests recorded in the current window."""
        self._expire(self.slot_of(self.clock()))
        return self._requests

    @property
    def retries_in_window(self) -> int:
        """Retries granted in the current window."""
        self._expire(self.slot_of(self.clock()))
        return self._retries

    def record_request(self) -> None:
        """Count one original request (never a retry): it earns `ratio` of a retry."""
        if self.clock() < self._slot_end:  # still in the newest slot (every request: no lookup)
            self._slots[-1][1] += 1
        else:
            self._current()[1] += 1
        self._requests += 1

    def try_retry(self) -> bool:
        """True, and the retry counted, if it fits the budget; False (nothing counted) otherwise."""
        slot = self._current()
        if self._retries >= max(self.minimum, self.ratio * self._requests):
            return False
        slot[2] += 1
        self._retries += 1
        return True

    def _current(self) -> list[int]:
        index = self.slot_of(self.clock())
        self._expire(index)
        if not self._slots or self._slots[-1][0] != index:
            self._slots.append([index, 0, 0])
        self._slot_end = (index + 1) * self.resolution_s
        return self._slots[-1]

    def _expire(self, index: int) -> None:
        while self._slots and self._slots[0][0] <= index - self.slots:
            _, requests, retries = self._slots.popleft()
            self._requests -= requests
            self._retries -= retries


class RetryBudgets:
    """One `RetryBudget` per upstream: a dead upstream spends only the retries its own traffic earned."""

    def __init__(self, ratio: float = 0.2, minimum: int = 3, *, clock: Callable[[], float] = time.monotonic):
        RetryBudget(ratio, minimum)  # the same checks, now rather than at the first request
        self.ratio, self.minimum, self.clock = ratio, minimum, clock
        self._budgets: dict[str, RetryBudget] = {}

    def of(self, upstream: str) -> RetryBudget:
        """The budget of `upstream` (a base URL), created on first use."""
        budget = self._budgets.get(upstream)
        if budget is None:
            budget = self._budgets[upstream] = RetryBudget(self.ratio, self.minimum, clock=self.clock)
        return budget
