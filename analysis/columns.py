"""Outcome records as columns for the statistics: one row per unpinned record of the two compared arms.

Usage: `cols = from_records(records, stable="v1", candidate="v2")`

This is the only place that reads `OutcomeRecord` fields, and `is_error` the only definition of an error. ρ
is P(routed to the candidate | routed to one of the pair): a candidate record logs it as `p_variant`, a
stable record logs 1 − ρ (two serving arms); with three or more serving arms it is the planned pair share.
Pinned records and records routed with certainty are excluded (not randomised), as are other variants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from analysis.counts import Array, BoolArray
from experiments.outcome import OutcomeRecord

UnitArray = np.ndarray[tuple[int], np.dtype[Any]]
"""One unit key per row: int64 codes (simulations) or object (unit hashes from records)."""


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
    unit: UnitArray | None = None
    """The assignment unit of each row (hashable keys: ints in simulations, unit hashes live); None when the
    experiment randomises each request (`unit: request`)."""
    extra: Mapping[str, Array] = field(default_factory=dict)
    """Further measures asked for (`analysis.token_metrics`: `ttft_ms`, ...), NaN where a row has none."""

    @property
    def size(self) -> int:
        """Number of rows."""
        return int(self.in_b.size)


def make_columns(
    in_b: BoolArray,
    rho: Array,
    error: BoolArray,
    latency_ms: Array,
    reward: Array | None = None,
    unit: UnitArray | None = None,
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
        None if unit is None else np.asarray(unit),
    )


def from_records(
    records: Sequence[OutcomeRecord],
    stable: str,
    candidate: str,
    *,
    pair_share: float | None = None,
    by_unit: bool = False,
    measures: Sequence[str] = (),
) -> Columns:
    """The records of `stable` and `candidate` that were randomised between them, as columns.

    ρ is the candidate's share of the pair: from each record's logged probability with two serving arms,
    or `pair_share` (p_cand / (p_cand + p_stable) of the planned weights) with more. Records routed with
    certainty (pinned, shadowing phase, blue-green, a weight of 0 or 100) tell nothing about the difference
    and are left out of every test. `by_unit`: carry each record's unit (its own request id when it has none).
    `measures`: the token measures to carry in `extra` (analysis.token_metrics).
    """
    rows = [r for r in records if not r.pinned and r.variant in (stable, candidate)]
    in_b = np.fromiter((r.variant == candidate for r in rows), dtype=np.bool_, count=len(rows))
    p = np.fromiter((r.p_variant for r in rows), dtype=np.float64, count=len(rows))
    rho = np.where(in_b, p, 1.0 - p)
    if pair_share is not None:
        rho = np.where((p > 0.0) & (p < 1.0), pair_share, np.where(in_b, p, 1.0 - p))
    keep = (rho > 0.0) & (rho < 1.0)
    if not keep.all():
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
        in_b, rho = in_b[keep], rho[keep]
    units = np.array([r.unit or r.request_id for r in rows], dtype=object) if by_unit else None
    errors = np.fromiter((is_error(r.status, r.error) for r in rows), dtype=np.bool_, count=len(rows))
    cols = make_columns(
        in_b,
        rho,
        errors,
        np.fromiter((r.latency_ms for r in rows), dtype=np.float64, count=len(rows)),
        np.fromiter((np.nan if r.reward is None else r.reward for r in rows), np.float64, len(rows)),
        units,
    )
    return replace(cols, extra=measure_columns(rows, errors, measures)) if measures else cols


def _measure(r: OutcomeRecord, measure: str, error: bool) -> float:
    """One token measure of a record (analysis.token_metrics): NaN for errors and where it has none."""
    if error:
        return np.nan
    if measure == "ttft_ms":
        return np.nan if r.ttft_ms is None else r.ttft_ms
    if measure == "itl_ms":
        return np.nan if r.itl_ms is None else r.itl_ms
    if measure == "ms_per_token":
        tokens = r.output_tokens
        return r.latency_ms / tokens if tokens is not None and tokens >= 1 else np.nan
    raise ValueError(f"unknown measure {measure!r}")


def measure_columns(
    rows: Sequence[OutcomeRecord], errors: BoolArray, measures: Sequence[str]
) -> dict[str, Array]:
    """Each measure of `rows` as a column (NaN where a row does not carry it)."""
    n = len(rows)
    return {
        m: np.fromiter((_measure(r, m, bool(e)) for r, e in zip(rows, errors, strict=True)), np.float64, n)
        for m in measures
    }
