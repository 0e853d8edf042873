"""Rate-limit decisions: the GCRA arithmetic and the store that keeps its state per key.

Usage: store = MemoryLimiterStore(Gcra(rate=100, burst=20)); decision = await store.acquire(key, now)

GCRA (generic cell rate algorithm) keeps one number per key, the theoretical arrival time (`tat`): when
the key's budget would be full again if nothing else arrived. Each admitted request pushes it one emission
interval `1/rate` further; a request is refused when that would put it more than `burst` intervals ahead
of now. Over any window of length w a key is admitted at most `burst + rate·w` requests.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one request: admitted or not, and how long to wait before retrying."""

    allowed: bool
    retry_after_s: float
    """0.0 when allowed; otherwise seconds until the same request would be admitted."""
    reason: str = ""
    """Empty when the key's own budget decided; else why not (`store_unavailable`: a shared store failed)."""


ALLOWED = Decision(True, 0.0)
"""Every admission's decision (immutable, so shared: no object made per admitted request)."""


class Gcra:
    """Pure GCRA arithmetic; the caller owns the state (`tat`) and the clock (`now`)."""

    def __init__(self, rate: float, burst: int) -> None:
        if isinstance(rate, bool) or not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number > 0 (requests/second), got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be an integer ≥ 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self.interval = 1.0 / self.rate
        self.tolerance = burst * self.interval
        # Repeated float additions of `interval` must not refuse the last request of a burst
        # (20 × 0.01 is 0.20000000000000004); a nanosecond of slack is far below any real clock's jitter.
        self.slack = min(1e-9, self.interval / 1000)

    def check(self, tat: float, now: float) -> tuple[bool, float, float]:
        """Decide one request at `now` for a key whose state is `tat` (use `now` for a fresh key).

        Returns (allowed, new_tat, retry_after_s); when refused, `new_tat == tat`: refusals cost nothing.
        """
        candidate = max(tat, now) + self.interval
        earliest = candidate - self.tolerance
        if earliest <= now + self.slack:
            return True, candidate, 0.0
        return False, tat, earliest - now


class LimiterStore(Protocol):
    """Owns the GCRA state per key and decides atomically (read, check, write as one step).

    A Redis implementation runs the same arithmetic in one Lua script on Redis' own clock, so it may
    ignore `now`; the in-memory one uses it.
    """

    async def acquire(self, key: str, now: float) -> Decision:
        """Decide one request for `key` at `now` and record it if admitted."""
        ...


class MemoryLimiterStore:
    """In-process store bounded to `max_keys`, evicting the least recently used key when full.

    An evicted key simply starts fresh (a full burst), which can only admit more, never refuse a request
    the unbounded limiter would have admitted. Single event loop: no awaits inside, hence atomic.
    """

    def __init__(self, gcra: Gcra, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be ≥ 1, got {max_keys}")
        self.gcra = gcra
        self.max_keys = max_keys
        self.evicted = 0
        self._tats: OrderedDict[str, float] = OrderedDict()

    async def acquire(self, key: str, now: float) -> Decision:
        """Decide one request for `key` at `now`."""
        return self.acquire_sync(key, now)

    def acquire_sync(self, key: str, now: float) -> Decision:
        """The same decision without the coroutine, for pure-logic callers and tests."""
        tat = self._tats.get(key, now)
        allowed, new_tat, retry_after = self.gcra.check(tat, now)
        self._tats[key] = new_tat
        self._tats.move_to_end(key)
        if len(self._tats) > self.max_keys:
            self._tats.popitem(last=False)
            self.evicted += 1
        return ALLOWED if allowed else Decision(False, retry_after)

    def __len__(self) -> int:
        return len(self._tats)

    def __contains__(self, key: object) -> bool:
        return key in self._tats
