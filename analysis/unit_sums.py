"""Sufficient statistics of the unit-level (sticky assignment) tests, as small immutable values.

Usage: `a, b = tally.arms`; `s, info = unit_scores.error_score(a, b, c=1.0)` (see `analysis.unit_tally`).

`ArmSums` are one arm's sums over its units (the unit is the observation); `StepSums` are the Horvitz–Thompson
totals clustered by unit used while the split changes (canary steps); `TailSums` are one arm's per-threshold
counts for the p99 test. The helpers below are shared by the incremental state classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Per-unit Horvitz–Thompson quantities, in this column order: a = Σ_B w·e, b = Σ_B w, c = Σ_A w·e,
# d = Σ_A w, u = Σ_B w·y, v = Σ_A w·y (w = 1/π on B, 1/(1 − π) on A).
HT_A, HT_B, HT_C, HT_D, HT_U, HT_V = range(6)
HT_WIDTH = 6


@dataclass(frozen=True, slots=True)
class ArmSums:
    """One arm's sums over its units: m units, N records, Snn = Σn², errors (E, Sen = Σe·n, See = Σe²) and
    the outcome y (Y, Syn = Σy·n, Syy = Σy²; κ-centred log latency, or raw rewards in a reward tally)."""

    m: float = 0.0
    N: float = 0.0
    Snn: float = 0.0
    E: float = 0.0
    Sen: float = 0.0
    See: float = 0.0
    Y: float = 0.0
    Syn: float = 0.0
    Syy: float = 0.0

    @staticmethod
    def from_row(row: Array) -> ArmSums:
        """Sums from a row in field order (m, N, Snn, E, Sen, See, Y, Syn, Syy)."""
        return ArmSums(*(float(x) for x in row))


ARM_FIELDS = 9


def _frozen(x: npt.ArrayLike) -> Array:
    out = np.array(x, dtype=np.float64)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True)
class StepSums:
    """Horvitz–Thompson totals clustered by unit, for a split that changes over time.

    `T` (6,) are the totals of a, b, c, d, u, v over units, `P` (6, 6) their pairwise product sums S_pq over
    units; W_A, W_B the sums of squared record weights per arm; M units in all; m_A, m_B units and N_A, N_B
    records per arm (as in `ArmSums`).
    """

    T: Array
    P: Array
    W_A: float
    W_B: float
    M: float
    m_A: float
    m_B: float
    N_A: float
    N_B: float

    @staticmethod
    def make(
        t: npt.ArrayLike, p: npt.ArrayLike, w_a: float, w_b: float, m: float, a: ArmSums, b: ArmSums
    ) -> StepSums:
        """A read-only snapshot (arrays copied) with the unit and record counts taken from the arm sums."""
        return StepSums(_frozen(t), _frozen(p), w_a, w_b, m, a.m, b.m, a.N, b.N)

    def s(self, p: int, q: int) -> float:
        """S_pq, the sum over units of the product of per-unit quantities p and q (HT_A … HT_V)."""
        return float(self.P[p, q])


@dataclass(frozen=True, slots=True)
class TailSums:
    """One arm's p99 sums per threshold x_j: records above x_j (X), Σk_j·n (Skn), Σk_j² (Skk), with the arm's
    m, N and Snn."""

    x: Array
    m: float
    N: float
    Snn: float
    X: Array
    Skn: Array
    Skk: Array


def grow_rows(arr: npt.NDArray[Any], rows: int, fill: Any) -> npt.NDArray[Any]:
    """`arr` with at least `rows` rows: capacity doubles (at least), new rows hold `fill`."""
    if rows <= arr.shape[0]:
        return arr
    out = np.full((max(rows, 2 * arr.shape[0]), *arr.shape[1:]), fill, dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out


def per_arm(arm: IntArray, values: Array) -> Array:
    """Sum the rows of `values` (groups × k) by arm (0 or 1) → (2 × k)."""
    if arm.size > 4096:  # large (replay) batches: masked sums avoid a slow tall matrix product
        on_b = arm == 1
        return np.stack([values[~on_b].sum(axis=0), values[on_b].sum(axis=0)])
    onehot = np.empty((2, arm.size))
    onehot[1] = arm
    onehot[0] = 1.0 - onehot[1]
    return np.asarray(onehot @ values, dtype=np.float64)
