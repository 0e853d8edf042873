"""Everything the engine knows about an experiment so far: one immutable value, updated batch by batch.

Usage: `tally = update(Tally(), columns)`; any split of the same rows into batches gives the same tally.
Rewards arrive later than outcomes (feedback), so they have their own update: `update_rewards`.

Each part is the sequential state of one method family (docs/statistics.md). E-processes never reset: a new
canary step only adds rows with a new ρ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from analysis import error_rate, means, quantiles, rewards
from analysis.columns import Columns
from analysis.counts import RhoCounts, add_events
from analysis.quantiles import LatencyHistogram

Track = Literal["log_latency", "latency", "histograms"]
ALL_TRACKS: frozenset[Track] = frozenset({"log_latency", "latency", "histograms"})
NEEDS: dict[str, frozenset[Track]] = {
    "latency_gmean": frozenset({"log_latency"}),
    "latency_mean": frozenset({"latency"}),
    "latency_p50": frozenset({"histograms"}),
    "latency_p99": frozenset({"histograms"}),
}
"""The optional parts a metric reads (requests, errors and rewards are always kept: they are cheap)."""


def tracks_for(metrics: Iterable[str]) -> frozenset[Track]:
    """The optional parts needed by these metric names."""
    return frozenset().union(*(NEEDS.get(m, frozenset()) for m in metrics))


@dataclass(frozen=True, slots=True)
class Tally:
    """Sufficient statistics per method: requests, errors, latency (log and raw), histograms, rewards.

    `tracks` says which optional parts are kept up to date; the others stay empty (log E 0, CS unbounded).
    """

    tracks: frozenset[Track] = ALL_TRACKS
    requests: RhoCounts = field(default_factory=RhoCounts.empty)
    errors: RhoCounts = field(default_factory=RhoCounts.empty)
    log_latency: means.PsiSums = field(default_factory=means.PsiSums)
    latency: means.PsiSums = field(default_factory=means.PsiSums)
    hist_a: LatencyHistogram = field(default_factory=LatencyHistogram.empty)
    hist_b: LatencyHistogram = field(default_factory=LatencyHistogram.empty)
    reward: means.PsiSums = field(default_factory=means.PsiSums)

    @property
    def n_stable(self) -> int:
        """Stable requests seen."""
        return self.requests.total_a

    @property
    def n_candidate(self) -> int:
        """Candidate requests seen."""
        return self.requests.total_b


def update(tally: Tally, cols: Columns) -> Tally:
    """`tally` plus the rows of `cols` (in order)."""
    if cols.size == 0:
        return tally
    # ψ needs both arms possible: rows routed with certainty tell nothing about the difference.
    split = (cols.rho > 0.0) & (cols.rho < 1.0)
    in_b, rho, lat = cols.in_b[split], cols.rho[split], cols.latency_ms[split]
    tracks = tally.tracks
    out = replace(
        tally,
        requests=add_events(tally.requests, cols.rho, cols.in_b),
        errors=error_rate.update(tally.errors, cols.rho, cols.in_b, cols.error),
    )
    if "log_latency" in tracks:
        out = replace(
            out, log_latency=means.update(tally.log_latency, np.log(np.maximum(lat, 1e-6)), in_b, rho)
        )
    if "latency" in tracks:
        out = replace(out, latency=means.update(tally.latency, lat, in_b, rho))
    if "histograms" in tracks:
        hist_a = quantiles.update(tally.hist_a, cols.latency_ms[~cols.in_b])
        out = replace(out, hist_a=hist_a, hist_b=quantiles.update(tally.hist_b, cols.latency_ms[cols.in_b]))
    return out


def update_rewards(tally: Tally, cols: Columns) -> Tally:
    """`tally` plus the rewards among `cols` (rows without one are skipped)."""
    split = (cols.rho > 0.0) & (cols.rho < 1.0)
    reward = rewards.update(tally.reward, cols.reward[split], cols.in_b[split], cols.rho[split])
    return replace(tally, reward=reward)
