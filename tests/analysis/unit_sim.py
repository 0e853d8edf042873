"""Sticky populations for the unit-level tests: units with their own rates, error propensities and latency.

Usage: `s = sticky_stream(np.random.default_rng(1), units=2000)`; `t = tally_of(s)`.

Each unit has a lognormal request count, a Beta error propensity and a N(0, 0.3²) log-latency offset; its
records arrive at uniform times (a shared time profile). A unit is on B at time τ iff its hash u < π(τ), so
with a growing split units only move A → B (canary steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.unit_tally import UnitTally

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Stream:
    """Records in arrival order."""

    unit: IntArray
    in_b: BoolArray
    rho: Array
    error: BoolArray
    latency_ms: Array
    reward: Array

    @property
    def size(self) -> int:
        """Number of records."""
        return int(self.unit.size)

    def rows(self, lo: int, hi: int) -> tuple[IntArray, BoolArray, Array, BoolArray, Array]:
        """Arguments of `UnitTally.add` for records lo..hi − 1."""
        return self.unit[lo:hi], self.in_b[lo:hi], self.rho[lo:hi], self.error[lo:hi], self.latency_ms[lo:hi]


def sticky_stream(
    rng: np.random.Generator,
    units: int,
    pi: float | tuple[float, ...] = 0.1,
    rate_sigma: float = 1.0,
    error_beta: tuple[float, float] = (1.0, 49.0),
    error_ratio: float = 1.0,
    error_add: float = 0.0,
    latency_ratio: float = 1.0,
    reward_shift: float = 0.0,
    drift: float = 0.0,
) -> Stream:
    """A sticky A/B stream; a tuple `pi` is a canary schedule of equal-length steps.

    On B the error propensity p becomes error_ratio·p + error_add. `drift` multiplies both arms' error
    propensity by exp(drift·time) and their latency by exp(drift·time/4), time running from 0 to 1 over the
    stream (what confounds pooled arm means under canary steps).
    """
    counts = 1 + rng.poisson(rng.lognormal(0.5, rate_sigma, units))
    unit = np.repeat(np.arange(units), counts)
    order = np.argsort(rng.random(unit.size), kind="stable")
    unit = unit[order]
    steps = np.atleast_1d(np.asarray(pi, dtype=np.float64))
    step = np.minimum(np.arange(unit.size) * steps.size // unit.size, steps.size - 1)
    rho = steps[step]
    in_b = rng.random(units)[unit] < rho
    time = np.arange(unit.size) / unit.size
    prop = rng.beta(*error_beta, units)[unit] * np.exp(drift * time)
    p_err = np.where(in_b, prop * error_ratio + error_add, prop)
    error = rng.random(unit.size) < np.minimum(p_err, 1.0)
    offset = rng.normal(0.0, 0.3, units)[unit]
    latency = np.exp(4.0 + offset + drift * time / 4.0 + rng.normal(0.0, 0.5, unit.size))
    latency *= np.where(in_b, latency_ratio, 1.0)
    reward = rng.normal(offset, 1.0) + np.where(in_b, reward_shift, 0.0)
    return Stream(unit, in_b, rho, error, latency, reward)


def tally_of(
    s: Stream, batch: int | None = None, unit_cap: int = 1000, quantile: float | None = 0.99
) -> UnitTally:
    """A tally fed with the stream (one batch, or batches of `batch` records), rewards included."""
    t = UnitTally(unit_cap, quantile)
    step = s.size if batch is None else batch
    for lo in range(0, s.size, step):
        t.add(*s.rows(lo, lo + step))
        t.add_rewards(
            s.unit[lo : lo + step], s.in_b[lo : lo + step], s.rho[lo : lo + step], s.reward[lo : lo + step]
        )
    return t
