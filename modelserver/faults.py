"""Injected misbehaviour for infer requests: a fixed extra latency and a share of 500 answers.

The random source is passed in, so a seeded server fails the same requests (by arrival order) on every run.

Usage: faults = Faults(latency_s=0.05, error_rate=0.1, rng=random.Random(7)); if faults.should_fail(): ...
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Faults:
    """How an infer request is degraded; the defaults degrade nothing."""

    latency_s: float = 0.0
    """Seconds slept before answering each infer request."""
    error_rate: float = 0.0
    """Probability that an infer request is answered 500 instead of being run."""
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not self.latency_s >= 0:
            raise ValueError(f"latency must be >= 0 seconds, not {self.latency_s}")
        if not 0 <= self.error_rate <= 1:
            raise ValueError(f"error rate must be within 0..1, not {self.error_rate}")

    def should_fail(self) -> bool:
        """Draw whether this request gets an injected error (no draw at all when the rate is 0)."""
        return self.error_rate > 0 and self.rng.random() < self.error_rate

    async def delay(self) -> None:
        """Sleep the configured extra latency."""
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s)
