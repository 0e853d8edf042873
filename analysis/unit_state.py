"""Incremental per-unit state behind `UnitTally`: per-(unit, arm) totals, arm sums and Horvitz–Thompson sums.

Usage: `state = ArmState(); groups = state.add(code, arm, w, e, y)` with rows already cut to analysed records.

A unit is identified by an integer code (row index of the dense per-unit arrays). Each batch is grouped by
(unit, arm) and by unit; for every changed unit the quadratic sums gain new² − old² (and new·n_new −
old·n_old), so any split of the same rows into batches gives the same state up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.unit_sums import (
    ARM_FIELDS,
    HT_A,
    HT_B,
    HT_C,
    HT_D,
    HT_U,
    HT_V,
    HT_WIDTH,
    ArmSums,
    Array,
    IntArray,
    StepSums,
    grow_rows,
    per_arm,
)


@dataclass(frozen=True, slots=True)
class Groups:
    """A batch grouped by (unit, arm): the row → group map, each group's unit code and arm, and the unit's
    record count in that arm before and after the batch."""

    inverse: IntArray
    code: IntArray
    arm: IntArray
    n_old: Array
    n_new: Array


class ArmState:
    """Per-(unit, arm) totals n, e, y with the per-arm sums, and the per-unit HT quantities a … v with
    their totals, pairwise product sums, squared-weight sums and unit count (mutable, owned by a tally)."""

    def __init__(self, cap: int = 1024) -> None:
        self.n = np.zeros((cap, 2))
        self.e = np.zeros((cap, 2))
        self.y = np.zeros((cap, 2))
        self.ht = np.zeros((cap, HT_WIDTH))
        self.sums = np.zeros((2, ARM_FIELDS))
        self.t = np.zeros(HT_WIDTH)
        self.p = np.zeros((HT_WIDTH, HT_WIDTH))
        self.w2 = np.zeros(2)
        self.units = 0

    def reserve(self, units: int) -> None:
        """Make room for unit codes below `units`."""
        if units > self.n.shape[0]:
            self.n, self.e, self.y = (grow_rows(a, units, 0.0) for a in (self.n, self.e, self.y))
            self.ht = grow_rows(self.ht, units, 0.0)

    def arm_sums(self) -> tuple[ArmSums, ArmSums]:
        """(A, B) sums over units."""
        return ArmSums.from_row(self.sums[0]), ArmSums.from_row(self.sums[1])

    def step_sums(self) -> StepSums:
        """A snapshot of the Horvitz–Thompson sums."""
        a, b = self.arm_sums()
        return StepSums.make(self.t, self.p, float(self.w2[0]), float(self.w2[1]), float(self.units), a, b)

    def add(self, code: IntArray, arm: IntArray, w: Array, e: Array, y: Array) -> Groups:
        """Add analysed rows (unit code, arm 0/1, HT weight, error 0/1, outcome y); returns the grouping."""
        keys, inverse = np.unique(code * 2 + arm, return_inverse=True)
        inverse = inverse.reshape(-1)
        g = keys.size
        gc, ga = keys >> 1, keys & 1
        dn = np.bincount(inverse, minlength=g).astype(np.float64, copy=False)
        de = np.bincount(inverse, weights=e, minlength=g)
        dy = np.bincount(inverse, weights=y, minlength=g)
        on, oe, oy = self.n[gc, ga], self.e[gc, ga], self.y[gc, ga]
        nn, ne, ny = on + dn, oe + de, oy + dy
        contrib = np.column_stack(
            [
                on == 0.0,
                dn,
                nn * nn - on * on,
                de,
                ne * nn - oe * on,
                ne * ne - oe * oe,
                dy,
                ny * nn - oy * on,
                ny * ny - oy * oy,
            ]
        )
        self.sums += per_arm(ga, contrib)
        self.n[gc, ga], self.e[gc, ga], self.y[gc, ga] = nn, ne, ny
        sw = np.bincount(inverse, weights=w, minlength=g).astype(np.float64, copy=False)
        swe = np.bincount(inverse, weights=w * e, minlength=g).astype(np.float64, copy=False)
        swy = np.bincount(inverse, weights=w * y, minlength=g).astype(np.float64, copy=False)
        self._add_ht(gc, ga, sw, swe, swy)
        self.w2 += np.bincount(arm, weights=w * w, minlength=2)
        return Groups(inverse, gc, ga, on, nn)

    def _add_ht(self, gc: IntArray, ga: IntArray, sw: Array, swe: Array, swy: Array) -> None:
        # Keys are sorted, so a unit's (A, B) groups are adjacent: map each group to its unit's slot.
        start = np.ones(gc.size, dtype=np.bool_)
        start[1:] = gc[1:] != gc[:-1]
        slot = np.cumsum(start) - 1
        uc = gc[start]
        dq = np.zeros((uc.size, HT_WIDTH))
        on_b = ga == 1
        for arm_b, cols in ((True, (HT_A, HT_B, HT_U)), (False, (HT_C, HT_D, HT_V))):
            sel = on_b if arm_b else ~on_b
            rows = slot[sel]
            dq[rows, cols[0]], dq[rows, cols[1]], dq[rows, cols[2]] = swe[sel], sw[sel], swy[sel]
        old = self.ht[uc]
        new = old + dq
        self.units += int(np.count_nonzero(old[:, HT_B] + old[:, HT_D] == 0.0))
        self.p += new.T @ new - old.T @ old
        self.t += dq.sum(axis=0)
        self.ht[uc] = new
