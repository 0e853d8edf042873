"""Absolute service levels for the variant taking all traffic (blue-green: no concurrent comparison exists).

Usage: `served.add(errors, latencies)`; `checks = check_slo(served, Slo(error_rate=0.01, p99_ms=250), 0.05)`

Both limits are rates of bad requests: errors above `errorRate`, or latencies above `p99Ms` more often than
1% of the time (that is what "p99 above the limit" means). Each is an exact one-sided beta-binomial mixture
(anytime-valid) of H0 "rate ≤ limit" at α/2; "broken" means the evidence says the limit is exceeded. Latencies
are counted above the histogram edge just over the limit, which can only understate the breaches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis import quantiles
from analysis.mixtures import beta_binomial_log_mixture
from analysis.quantiles import EDGES, LatencyHistogram
from analysis.wording import evalue
from experiments.model import Slo

TUNE_REQUESTS = 10_000
"""Requests at which the mixture is tightest."""


@dataclass(slots=True)
class Served:
    """Everything the variant taking traffic answered: requests, errors and a latency histogram."""

    n: int = 0
    errors: int = 0
    hist: LatencyHistogram = field(default_factory=LatencyHistogram.empty)

    def add(self, errors: Sequence[bool], latency_ms: Sequence[float]) -> None:
        """More answered requests (one error flag and one latency each)."""
        self.n += len(errors)
        self.errors += sum(errors)
        if len(latency_ms):
            self.hist = quantiles.update(self.hist, np.asarray(latency_ms, dtype=np.float64))


@dataclass(frozen=True, slots=True)
class SloCheck:
    """One absolute limit at one look."""

    name: str
    limit: float
    rate: float
    """Observed share of bad requests."""
    allowed: float
    """Share of bad requests the limit allows."""
    log_e: float
    alpha: float

    @property
    def broken(self) -> bool:
        """The evidence says the limit is exceeded."""
        return self.log_e >= float(np.log(1.0 / self.alpha))

    def reason(self) -> str:
        """Why (in words)."""
        op = "≥" if self.broken else "<"
        return (
            f"slo {self.name} {self.limit:g}: e-value {evalue(self.log_e)} {op} "
            f"1/α = {1 / self.alpha:.3g} (bad share {self.rate:.4g}, allowed {self.allowed:g})"
        )

    def as_json(self) -> dict[str, Any]:
        """The snapshot entry."""
        return {
            "name": self.name,
            "limit": self.limit,
            "rate": self.rate,
            "log_e": self.log_e,
            "broken": self.broken,
        }


def rate_log_e(bad: float, n: float, p0: float) -> float:
    """log E against H0 "P(bad) ≤ p0" from `bad` of `n` (one-sided beta-binomial mixture; 0 at n = 0)."""
    if n <= 0:
        return 0.0
    s, v = bad - p0 * n, p0 * (1.0 - p0) * n
    v_opt = p0 * (1.0 - p0) * TUNE_REQUESTS
    return max(float(beta_binomial_log_mixture(s, v, v_opt, p0, 1.0 - p0, one_sided=True)), 0.0)


def check_slo(served: Served, slo: Slo | None, alpha: float) -> tuple[SloCheck, ...]:
    """The declared limits, each at α/2, on everything the active side answered."""
    if slo is None:
        return ()
    n = served.n
    out = []
    if slo.error_rate is not None:
        bad = float(served.errors)
        e = rate_log_e(bad, n, slo.error_rate)
        out.append(SloCheck("errorRate", slo.error_rate, bad / n if n else 0.0, slo.error_rate, e, alpha / 2))
    if slo.p99_ms is not None:
        hist = served.hist
        edge = int(np.searchsorted(EDGES, slo.p99_ms, side="left"))
        above = float(hist.n - hist.cum[min(edge, EDGES.size - 1)]) if hist.n else 0.0
        e = rate_log_e(above, hist.n, 0.01)
        out.append(SloCheck("p99Ms", slo.p99_ms, above / hist.n if hist.n else 0.0, 0.01, e, alpha / 2))
    return tuple(out)
