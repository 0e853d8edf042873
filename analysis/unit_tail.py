"""Incremental p99 state behind `UnitTally`: per-unit counts k_j of records above x_j, and per-arm sums.

Usage: `tail = TailState(0.99); tail.add(code, arm, latency_ms, groups, n_now)` after the arm state's update.

The first `reference` analysed records (both arms) are buffered; then x_ref = their `quantile` is frozen,
the thresholds are x_j = x_ref·exp(−0.40 + 0.02·j), j = 0..50, and the per-unit counts are rebuilt from the
buffer.
Afterwards each batch updates them in place. Counts are sparse: only (unit, arm) pairs with a record above
x_0 ≈ 0.67·x_ref get a dense row of 51 int32 counts (rows grow geometrically), so memory follows the number
of such pairs, not the number of units.
"""

from __future__ import annotations

import numpy as np

from analysis.unit_state import Groups
from analysis.unit_sums import Array, IntArray, grow_rows, per_arm

P99_THRESHOLDS = 51
P99_LOG_LOW = -0.40
P99_LOG_STEP = 0.02
P99_REFERENCE = 1000


def thresholds(x_ref: float) -> Array:
    """x_j = x_ref·exp(−0.40 + 0.02·j), j = 0..50 (0.67 to 1.82 × x_ref)."""
    return np.asarray(
        x_ref * np.exp(P99_LOG_LOW + P99_LOG_STEP * np.arange(P99_THRESHOLDS)), dtype=np.float64
    )


class TailState:
    """Buffer until x_ref is frozen, then sparse per-(unit, arm) k_j and per-arm X, S_kn, S_kk (mutable)."""

    def __init__(self, quantile: float = 0.99, reference: int = P99_REFERENCE, cap: int = 1024) -> None:
        if not 0.0 < quantile < 1.0:
            raise ValueError(f"quantile must be in (0, 1), got {quantile}")
        self.quantile = quantile
        self.reference = max(int(reference), 1)
        self._buffer: list[tuple[IntArray, IntArray, Array]] = []
        self._buffered = 0
        self.x_ref: float | None = None
        self.x: Array | None = None
        self.row = np.full((cap, 2), -1, dtype=np.int64)
        self.k = np.zeros((64, P99_THRESHOLDS), dtype=np.int32)
        self.rows = 0
        self.X = np.zeros((2, P99_THRESHOLDS))
        self.Skn = np.zeros((2, P99_THRESHOLDS))
        self.Skk = np.zeros((2, P99_THRESHOLDS))

    def reserve(self, units: int) -> None:
        """Make room for unit codes below `units`."""
        self.row = grow_rows(self.row, units, -1)

    def add(self, code: IntArray, arm: IntArray, latency_ms: Array, groups: Groups, n_now: Array) -> None:
        """Add analysed rows grouped as in `groups`; `n_now`: (units × 2) record counts after the batch."""
        if self.x is None:
            self._buffer.append((code, arm, latency_ms))
            self._buffered += code.size
            if self._buffered >= self.reference:
                self._freeze(n_now)
            return
        j = np.searchsorted(self.x, latency_ms, side="left")
        self._apply(groups.inverse, groups.code, groups.arm, j, groups.n_old, groups.n_new)

    def _freeze(self, n_now: Array) -> None:
        code = np.concatenate([b[0] for b in self._buffer])
        arm = np.concatenate([b[1] for b in self._buffer])
        lat = np.concatenate([b[2] for b in self._buffer])
        self._buffer = []
        self.x_ref = float(np.quantile(lat[: self.reference], self.quantile))
        self.x = thresholds(self.x_ref)
        keys, inverse = np.unique(code * 2 + arm, return_inverse=True)
        gc, ga = keys >> 1, keys & 1
        j = np.searchsorted(self.x, lat, side="left")
        self._apply(inverse.reshape(-1), gc, ga, j, np.zeros(gc.size), n_now[gc, ga])

    def _apply(
        self, inverse: IntArray, gc: IntArray, ga: IntArray, j: IntArray, n_old: Array, n_new: Array
    ) -> None:
        """Update the (unit, arm) groups that have a row or a record above x_0 (the others keep k = 0)."""
        row = self.row[gc, ga]
        above = j > 0
        rel = row >= 0
        rel[inverse[above]] = True
        if not rel.any():
            return
        idx = np.flatnonzero(rel)
        slot = np.full(gc.size, -1, dtype=np.int64)
        slot[idx] = np.arange(idx.size)
        bins = P99_THRESHOLDS + 1
        flat = slot[inverse[above]] * bins + j[above]
        hist = np.bincount(flat, minlength=idx.size * bins).reshape(idx.size, bins)
        dk = np.cumsum(hist[:, :0:-1], axis=1)[:, ::-1]  # dk[:, j] = #records above x_j
        gc, ga, row, n_old, n_new = gc[idx], ga[idx], row[idx], n_old[idx], n_new[idx]
        fresh = row < 0
        if fresh.any():
            row[fresh] = self.rows + np.arange(int(np.count_nonzero(fresh)))
            self.rows += int(np.count_nonzero(fresh))
            self.k = grow_rows(self.k, self.rows, 0)
            self.row[gc[fresh], ga[fresh]] = row[fresh]
        old = self.k[row].astype(np.float64)
        new = old + dk
        self.X += per_arm(ga, dk.astype(np.float64))
        self.Skn += per_arm(ga, new * n_new[:, None] - old * n_old[:, None])
        self.Skk += per_arm(ga, new * new - old * old)
        self.k[row] = new.astype(np.int32)
