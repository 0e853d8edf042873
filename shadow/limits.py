"""The bounds of shadow traffic, in one light module (the sidecar's settings model takes its defaults from
here, without importing the dispatcher): the copy queue and its workers, each shadow's circuit breaker, and
where and how many comparisons run (docs/reliability.md: shadow isolation).

Usage: ShadowLimits(queue=100, workers=16, compare=CompareLimits(workers=1))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["process", "thread", "inline"]
"""Where large comparisons run: a process pool (the default), a thread pool, or the event loop itself
(the old behaviour, kept to measure against)."""


@dataclass(frozen=True, slots=True)
class CompareLimits:
    """How comparisons are run and bounded (docs/reliability.md: shadow isolation)."""

    inline_bytes: int = 16 * 1024
    """Answers up to this size (both sides) are compared inline: `json-exact` takes 0.5–1.3 ms on 16 KiB of
    small objects (2–7 ms on 64 KiB), the OIP kinds 0.1 ms; typical model answers are far smaller."""
    queue: int = 16
    """Comparisons waiting or running in the pool before new copies that need one are dropped."""
    workers: int = 1
    """Pool workers; one leaves the other core of a 2-core sidecar to the event loop."""
    mode: Mode = "process"


@dataclass(frozen=True, slots=True)
class ShadowLimits:
    """Safe defaults of docs/reliability.md."""

    queue: int = 100
    workers: int = 16
    timeout_s: float = 1.0
    max_body_bytes: int = 1024 * 1024
    """Largest request mirrored, unless the experiment sets its own (`spec.shadow.maxBodyBytes`)."""
    max_response_bytes: int = 1024 * 1024
    """Largest shadow answer read, unless the copy carries its experiment's cap (`ShadowJob.max_bytes`)."""
    breaker_failures: int = 5
    """Consecutive failures (timeout, reset, connect error) that open a shadow's circuit."""
    breaker_open_s: float = 1.0
    """How long an open circuit drops copies before one probe is let through."""
    compare: CompareLimits = field(default_factory=CompareLimits)
    """Where and how many comparisons of shadow answers run (`shadow.compare.pool`)."""
