"""Outcome records as columns for the statistics: one row per unpinned record of the two compared arms.

Usage: `cols = from_records(records, stable="v1", candidate="v2")`

This is the only place that reads `OutcomeRecord` fields, and `is_error` the only definition of an error.
ρ is P(routed to the candidate): a candidate record logs it as `p_variant`, a stable record logs
1 − ρ (two serving arms). Pinned records are excluded (not randomised), as are other variants.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analysis.counts import Array, BoolArray
from experiments.outcome import OutcomeRecord


def is_error(status: int, error: str | None) -> bool:
    """An outcome is an error if the status is ≥ 500 or 0 (nothing sent), or an error class was recorded."""
    return status >= 500 or status == 0 or error is not None


@dataclass(frozen=True, slots=True)
class Columns:
    """Aligned arrays, in arrival order."""

    in_b: BoolArray
    rho: Array
    error: BoolArray
    latency_ms: Array
    reward: Array
    """NaN where no reward has been joined."""

    @property
    def size(self) -> int:
        """Number of rows."""
        return int(self.in_b.size)


def make_columns(
    in_b: BoolArray, rho: Array, error: BoolArray, latency_ms: Array, reward: Array | None = None
) -> Columns:
    """Columns from arrays (simulations and offline analysis); `reward` defaults to all missing."""
    in_b = np.asarray(in_b, dtype=np.bool_)
    rew = np.full(in_b.size, np.nan) if reward is None else np.asarray(reward, dtype=np.float64)
    return Columns(
        in_b,
        np.asarray(rho, dtype=np.float64),
        np.asarray(error, dtype=np.bool_),
        np.asarray(latency_ms, dtype=np.float64),
        rew,
    )


def from_records(records: Sequence[OutcomeRecord], stable: str, candidate: str) -> Columns:
    """The unpinned records answered by `stable` or `candidate`, as columns."""
    rows = [r for r in records if not r.pinned and r.variant in (stable, candidate)]
    in_b = np.fromiter((r.variant == candidate for r in rows), dtype=np.bool_, count=len(rows))
    p = np.fromiter((r.p_variant for r in rows), dtype=np.float64, count=len(rows))
    return make_columns(
        in_b,
        np.where(in_b, p, 1.0 - p),
        np.fromiter((is_error(r.status, r.error) for r in rows), dtype=np.bool_, count=len(rows)),
        np.fromiter((r.latency_ms for r in rows), dtype=np.float64, count=len(rows)),
        np.fromiter((np.nan if r.reward is None else r.reward for r in rows), np.float64, len(rows)),
    )
