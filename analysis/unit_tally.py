"""Unit-level (sticky assignment) sequential state: every sum the unit-level tests need, updated per batch.

Usage: `t = UnitTally(); t.add(units, in_b, rho, error, latency_ms)`; then `analysis.unit_estimands` reads it.

The tally is mutable and owned by its caller. Unit keys (any hashables) map to integer codes indexing dense
per-unit arrays that grow geometrically. Each batch is vectorised (grouped by unit and arm) and any split of
the same rows into batches gives the same state (exact for counts, up to float rounding for sums).
A unit's records beyond `unit_cap` (counted in arrival order over both arms) are not analysed: the cut depends
only on the unit's own record count. y = ln(latency_ms) − κ, κ = ln(latency of the first analysed record).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis.counts import RHO_DECIMALS, BoolArray
from analysis.unit_state import ArmState
from analysis.unit_sums import ArmSums, Array, IntArray, StepSums, TailSums, grow_rows
from analysis.unit_tail import P99_REFERENCE, TailState

Units = Sequence[Hashable] | npt.NDArray[Any]
MIN_LATENCY_MS = 1e-3


def _sorted_runs(codes: IntArray) -> tuple[IntArray, IntArray, BoolArray, BoolArray]:
    """Stable order by code, each sorted row's rank within its code, and run starts/ends in sorted order."""
    order = np.argsort(codes, kind="stable")
    sc = codes[order]
    start = np.ones(sc.size, dtype=np.bool_)
    start[1:] = sc[1:] != sc[:-1]
    end = np.ones(sc.size, dtype=np.bool_)
    end[:-1] = start[1:]
    idx = np.arange(sc.size)
    rank = idx - np.maximum.accumulate(np.where(start, idx, 0))
    return order, rank, start, end


class _Cap:
    """Per-unit record counts for the influence cap: which rows of a batch are analysed."""

    def __init__(self, cap: int) -> None:
        self.seen = np.zeros(cap, dtype=np.int64)
        self.capped = np.zeros(2, dtype=np.int64)

    def cut(self, limit: int, sc: IntArray, rank: IntArray, end: BoolArray, arm: IntArray) -> BoolArray:
        """Which rows (sorted by code; `rank` within their code) are within `limit`; counts the others."""
        before = self.seen[sc]
        ok_sorted = before + rank < limit
        self.seen[sc[end]] += rank[end] + 1
        self.capped += np.bincount(arm[~ok_sorted], minlength=2)
        return ok_sorted


class UnitTally:
    """Per-unit state and per-arm sums for the unit-level tests (arm 0 = A/stable, 1 = B/candidate).

    `add` takes outcome rows, `add_rewards` matured rewards (their own per-unit sums). Rows must be of the two
    compared arms with 0 < ρ < 1, where ρ = planned probability that the row's unit goes to B; other rows are
    ignored. With `quantile` None the p99 state is not kept.
    """

    def __init__(
        self, unit_cap: int = 1000, quantile: float | None = 0.99, *, reference_records: int = P99_REFERENCE
    ) -> None:
        if unit_cap < 1:
            raise ValueError(f"unit_cap must be ≥ 1, got {unit_cap}")
        self.unit_cap = int(unit_cap)
        self._code_of: dict[Hashable, int] = {}
        cap = 1024
        self._cap = _Cap(cap)
        self._reward_cap = _Cap(cap)
        self._last_arm = np.full(cap, -1, dtype=np.int8)
        self._last_pi = np.full(cap, np.nan)
        self._switched = np.zeros(cap, dtype=np.bool_)
        self._n_switched = 0
        self._out = ArmState(cap)
        self._rew = ArmState(cap)
        self._tail = None if quantile is None else TailState(quantile, reference_records, cap)
        self._srm: dict[float, list[int]] = {}
        self._pis: set[float] = set()
        self._reward_pis: set[float] = set()
        self.kappa: float | None = None
        """ln of the latency of the first analysed record (frozen), or None before it."""

    # ---- updates -------------------------------------------------------------------------------------

    def add(
        self,
        units: Units,
        in_b: npt.ArrayLike,
        rho: npt.ArrayLike,
        error: npt.ArrayLike,
        latency_ms: npt.ArrayLike,
    ) -> None:
        """Add outcome rows in arrival order (unit key, on B, ρ, error, latency in ms)."""
        rho = _rounded(rho)
        ok = (rho > 0.0) & (rho < 1.0)
        codes = self._encode(units, ok)
        if codes.size == 0:
            return
        arm = np.asarray(in_b, dtype=np.bool_)[ok].astype(np.int64)
        pi = rho[ok]
        order, rank, start, end = _sorted_runs(codes)
        sc = codes[order]
        self._detect_switches(sc, arm[order], pi[order], start, end)
        first_ever = self._cap.seen[sc[start]] == 0
        ok_sorted = self._cap.cut(self.unit_cap, sc, rank, end, arm[order])
        self._count_new_units(arm[order][start][first_ever], pi[order][start][first_ever])
        keep = np.empty(codes.size, dtype=np.bool_)
        keep[order] = ok_sorted
        if not keep.any():
            return
        code, arm, pi = codes[keep], arm[keep], pi[keep]
        lat = np.maximum(np.asarray(latency_ms, dtype=np.float64)[ok][keep], MIN_LATENCY_MS)
        err = np.asarray(error, dtype=np.float64)[ok][keep]
        if self.kappa is None:
            self.kappa = math.log(float(lat[0]))
        self._pis.update(np.unique(pi).tolist())
        groups = self._out.add(code, arm, _weights(arm, pi), err, np.log(lat) - self.kappa)
        if self._tail is not None:
            self._tail.add(code, arm, lat, groups, self._out.n)

    def add_rewards(
        self, units: Units, in_b: npt.ArrayLike, rho: npt.ArrayLike, reward: npt.ArrayLike
    ) -> None:
        """Add matured rewards in arrival order (raw values; non-finite ones are skipped).

        They have their own per-unit sums (n_r, Σr) and their own cap count (`reward_capped`).
        """
        rho = _rounded(rho)
        rew = np.asarray(reward, dtype=np.float64)
        ok = (rho > 0.0) & (rho < 1.0) & np.isfinite(rew)
        codes = self._encode(units, ok)
        if codes.size == 0:
            return
        arm = np.asarray(in_b, dtype=np.bool_)[ok].astype(np.int64)
        pi = rho[ok]
        order, rank, _, end = _sorted_runs(codes)
        keep = np.empty(codes.size, dtype=np.bool_)
        keep[order] = self._reward_cap.cut(self.unit_cap, codes[order], rank, end, arm[order])
        if not keep.any():
            return
        self._reward_pis.update(np.unique(pi[keep]).tolist())
        w = _weights(arm[keep], pi[keep])
        self._rew.add(codes[keep], arm[keep], w, np.zeros(w.size), rew[ok][keep])

    def _encode(self, units: Units, ok: BoolArray) -> IntArray:
        keys = (
            units[ok].tolist()
            if isinstance(units, np.ndarray)
            else [u for u, k in zip(units, ok, strict=True) if k]
        )
        table = self._code_of
        get = table.get
        out = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            c = get(key)
            if c is None:
                c = table[key] = len(table)
            out[i] = c
        self._reserve(len(table))
        return out

    def _reserve(self, units: int) -> None:
        if units <= self._last_arm.size:
            return
        for c in (self._cap, self._reward_cap):
            c.seen = grow_rows(c.seen, units, 0)
        self._last_arm = grow_rows(self._last_arm, units, -1)
        self._last_pi = grow_rows(self._last_pi, units, np.nan)
        self._switched = grow_rows(self._switched, units, False)
        self._out.reserve(units)
        self._rew.reserve(units)
        if self._tail is not None:
            self._tail.reserve(units)

    def _detect_switches(
        self, sc: IntArray, arm: IntArray, pi: Array, start: BoolArray, end: BoolArray
    ) -> None:
        """A record on the other arm than its unit's previous record, at the same π, marks a switch."""
        prev_arm = np.empty(sc.size, dtype=np.int64)
        prev_pi = np.empty(sc.size)
        prev_arm[1:], prev_pi[1:] = arm[:-1], pi[:-1]
        prev_arm[start], prev_pi[start] = self._last_arm[sc[start]], self._last_pi[sc[start]]
        hit = sc[(prev_arm >= 0) & (prev_arm != arm) & (prev_pi == pi)]
        if hit.size:
            fresh = np.unique(hit[~self._switched[hit]])
            self._switched[fresh] = True
            self._n_switched += int(fresh.size)
        self._last_arm[sc[end]], self._last_pi[sc[end]] = arm[end], pi[end]

    def _count_new_units(self, arm: IntArray, pi: Array) -> None:
        for value in np.unique(pi).tolist():
            at = pi == value
            n_b = int(np.count_nonzero(arm[at]))
            counts = self._srm.setdefault(float(value), [0, 0])
            counts[0] += int(np.count_nonzero(at)) - n_b
            counts[1] += n_b

    # ---- reads -----------------------------------------------------------------------------------------

    @property
    def arms(self) -> tuple[ArmSums, ArmSums]:
        """(A, B) outcome sums over units: m, N, Snn, E, Sen, See, Y, Syn, Syy."""
        return self._out.arm_sums()

    @property
    def reward_arms(self) -> tuple[ArmSums, ArmSums]:
        """(A, B) reward sums over units; the Y fields hold raw rewards (Y = Σr), the error fields are 0."""
        return self._rew.arm_sums()

    @property
    def step_sums(self) -> StepSums:
        """Horvitz–Thompson sums of the outcomes clustered by unit (canary-step form)."""
        return self._out.step_sums()

    @property
    def reward_step_sums(self) -> StepSums:
        """Horvitz–Thompson sums of the rewards (u, v hold weighted rewards; a, c are 0)."""
        return self._rew.step_sums()

    def units(self, arm: int) -> int:
        """Units with at least one analysed record on `arm` (0 = A, 1 = B)."""
        return int(self._out.sums[arm, 0])

    def records(self, arm: int) -> int:
        """Analysed records on `arm`."""
        return int(self._out.sums[arm, 1])

    def effective_units(self, arm: int) -> float:
        """N²/Snn on `arm` (equal to the units when each has one record); 0 when empty."""
        n, snn = self._out.sums[arm, 1], self._out.sums[arm, 2]
        return float(n * n / snn) if snn > 0 else 0.0

    @property
    def capped(self) -> tuple[int, int]:
        """(A, B) records beyond `unit_cap` for their unit (served and stored, not analysed)."""
        return int(self._cap.capped[0]), int(self._cap.capped[1])

    @property
    def reward_capped(self) -> tuple[int, int]:
        """(A, B) rewards beyond `unit_cap` for their unit."""
        return int(self._reward_cap.capped[0]), int(self._reward_cap.capped[1])

    @property
    def switched(self) -> int:
        """Units seen on both arms at an unchanged split (a record on the other arm than the unit's previous
        record, at the same π): the 'unit changed arm' hold."""
        return self._n_switched

    @property
    def srm_counts(self) -> dict[float, tuple[int, int]]:
        """{π: (m_A, m_B)}: units at their first analysed record, grouped by the π in force then."""
        return {pi: (c[0], c[1]) for pi, c in sorted(self._srm.items())}

    @property
    def steps(self) -> bool:
        """True once analysed outcome records with more than one distinct π have been seen."""
        return len(self._pis) > 1

    @property
    def reward_steps(self) -> bool:
        """True once rewards with more than one distinct π have been seen."""
        return len(self._reward_pis) > 1

    @property
    def x_ref(self) -> float | None:
        """The frozen p99 reference x_ref, or None (not frozen yet, or p99 not kept)."""
        return None if self._tail is None else self._tail.x_ref

    def tail(self, arm: int) -> TailSums | None:
        """`arm`'s p99 sums per threshold, or None before x_ref is frozen (or without p99)."""
        t = self._tail
        if t is None or t.x is None:
            return None
        s = self._out.sums[arm]
        x_j, c_n, c_k = t.X[arm].copy(), t.Skn[arm].copy(), t.Skk[arm].copy()
        return TailSums(t.x.copy(), float(s[0]), float(s[1]), float(s[2]), x_j, c_n, c_k)


def _rounded(rho: npt.ArrayLike) -> Array:
    """ρ rounded so that 1 − 0.9 and 0.1 are one π (and ρ within 1e-9 of 0 or 1 drops out)."""
    return np.asarray(np.round(np.asarray(rho, dtype=np.float64), RHO_DECIMALS), dtype=np.float64)


def _weights(arm: IntArray, pi: Array) -> Array:
    """Horvitz–Thompson weight of each record: 1/π on B, 1/(1 − π) on A."""
    return np.asarray(np.where(arm == 1, 1.0 / pi, 1.0 / (1.0 - pi)), dtype=np.float64)
