"""Unit-level (sticky assignment) tests read from a `UnitTally`: log e-values, p99 decisions, SRM, estimates.

Usage: `harm = rejects(error_log_e(t, 1.0, "greater", TAU_ERROR_HARM), alpha / k)`.

Each test is a one-sided normal mixture (`mix1`) of the current score. "greater" tests H0: B ≤ c·A (harm,
mix1(s, I)); "less" tests H0: B ≥ c·A (pass, mix1(−s, I)). Ratios c are > 0; rewards use an absolute
difference δ. Once more than one split π has been seen the canary-step (Horvitz–Thompson) form is used,
otherwise the constant-split form; p99 is tested per arm and threshold. The `*_grid` forms are vectorised
over the null value (the engine inverts them into decision bounds with `analysis.bounds`).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from analysis.unit_mix import mix1_array
from analysis.unit_scores import (
    error_scores,
    error_scores_steps,
    mean_diff_scores,
    mean_diff_scores_steps,
    srm_units_log_bf,
    tail_scores,
)
from analysis.unit_sums import HT_A, HT_B, HT_C, HT_D, HT_U, HT_V, Array
from analysis.unit_tail import P99_LOG_STEP
from analysis.unit_tally import UnitTally

Side = Literal["greater", "less"]

TAU_ERROR_HARM = 0.5
TAU_ERROR_PASS = math.log(1.2)
TAU_LATENCY_HARM = 0.1
TAU_LATENCY_PASS = math.log(1.05)
TAU_P99 = 0.4
ERROR_FLOOR = 0.001
P99_PASS_MIN_RECORDS = 5000
P99_P0 = 0.01


def _signed(s: Array, info: Array, side: Side, tau: float) -> Array:
    if side not in ("greater", "less"):
        raise ValueError(f"side must be 'greater' or 'less', got {side!r}")
    return mix1_array(s if side == "greater" else -s, info, tau)


def error_scores_of(t: UnitTally, c: npt.ArrayLike, floor: float = 0.0) -> tuple[Array, Array]:
    """(s, I) of the error-ratio test at each c: canary-step form once several π were seen, else constant."""
    return error_scores_steps(t.step_sums, c, floor) if t.steps else error_scores(*t.arms, c, floor)


def gmean_scores_of(t: UnitTally, log_c: npt.ArrayLike) -> tuple[Array, Array]:
    """(s, I) of the geometric-mean latency test at each log ratio (form chosen as for errors)."""
    return mean_diff_scores_steps(t.step_sums, log_c) if t.steps else mean_diff_scores(*t.arms, log_c)


def reward_scores_of(t: UnitTally, delta: npt.ArrayLike) -> tuple[Array, Array]:
    """(s, I) of the reward test at each δ (canary-step form once rewards at several π were seen)."""
    if t.reward_steps:
        return mean_diff_scores_steps(t.reward_step_sums, delta)
    return mean_diff_scores(*t.reward_arms, delta)


def error_log_e_grid(t: UnitTally, c: npt.ArrayLike, side: Side, tau: float, floor: float = 0.0) -> Array:
    """log e-values of the error-ratio test at each ratio in `c` (null p_B = c·p_A + floor on its side)."""
    return _signed(*error_scores_of(t, c, floor), side, tau)


def gmean_log_e_grid(t: UnitTally, log_c: npt.ArrayLike, side: Side, tau: float) -> Array:
    """log e-values of the geometric-mean latency test at each log ratio in `log_c`."""
    return _signed(*gmean_scores_of(t, log_c), side, tau)


def reward_log_e_grid(t: UnitTally, delta: npt.ArrayLike, side: Side, tau: float) -> Array:
    """log e-values of the reward test (difference of means, B − A) at each δ."""
    return _signed(*reward_scores_of(t, delta), side, tau)


def error_log_e(t: UnitTally, c: float, side: Side, tau: float, floor: float = 0.0) -> float:
    """log e-value of the error-ratio test at c: "greater" H0 p_B ≤ c·p_A + f, "less" H0 p_B ≥ c·p_A + f.

    f = `floor` is meant for the pass ("less") side, where zero errors would otherwise give no information.
    """
    return float(error_log_e_grid(t, c, side, tau, floor))


def gmean_log_e(t: UnitTally, c: float, side: Side, tau: float) -> float:
    """log e-value of the test of the ratio of geometric-mean latencies against c."""
    if not c > 0.0:
        raise ValueError("the ratio c must be positive")
    return float(gmean_log_e_grid(t, math.log(c), side, tau))


def reward_log_e(t: UnitTally, delta: float, side: Side, tau: float) -> float:
    """log e-value of the reward test: "greater" H0 mean_B − mean_A ≤ δ, "less" H0 ≥ δ."""
    return float(reward_log_e_grid(t, delta, side, tau))


def _tail_rejects(
    t: UnitTally, arm: int, level: float, side: Side
) -> tuple[Array, npt.NDArray[np.bool_]] | None:
    sums = t.tail(arm)
    if sums is None or not level > 0.0:
        return None
    s, info = tail_scores(sums, P99_P0)
    return sums.x, _signed(s, info, side, TAU_P99) >= math.log(1.0 / level)


def p99_lower(t: UnitTally, arm: int, level: float) -> float:
    """Highest x_j of the unbroken run from j = 0 up at which "q > x_j" rejects at `level` (0 if none)."""
    got = _tail_rejects(t, arm, level, "greater")
    if got is None or not got[1][0]:
        return 0.0
    x, ok = got
    run = int(ok.size if ok.all() else np.argmin(ok))
    return float(x[run - 1])


def p99_upper(t: UnitTally, arm: int, level: float) -> float:
    """Lowest x_j of the unbroken run from the top down at which "q < x_j" rejects at `level` (+∞ if none)."""
    got = _tail_rejects(t, arm, level, "less")
    if got is None or not got[1][-1]:
        return math.inf
    x, ok = got
    run = int(ok.size if ok.all() else np.argmin(ok[::-1]))
    return float(x[x.size - run])


def p99_harm(t: UnitTally, c: float, level: float) -> bool:
    """Rollback on p99: lower_B(level/2) > c·upper_A(level/2) (the engine passes level = α/K)."""
    return p99_lower(t, 1, level / 2.0) > c * p99_upper(t, 0, level / 2.0)


def p99_pass(t: UnitTally, c: float, level: float, min_records: int = P99_PASS_MIN_RECORDS) -> bool:
    """Non-inferiority on p99: upper_B(level/2) ≤ c·lower_A(level/2) and at least `min_records` on B."""
    if t.records(1) < min_records:
        return False
    return p99_upper(t, 1, level / 2.0) <= c * p99_lower(t, 0, level / 2.0)


def srm_log_e(t: UnitTally) -> float:
    """SRM log Bayes factor on units at their first analysed record, summed over the π groups (k = 1000)."""
    return srm_units_log_bf(t.srm_counts)


def _arm_means(t: UnitTally, num: tuple[str, int, int]) -> tuple[float, float] | None:
    """(mean_A, mean_B) per record of a field (`E` or `Y` name, HT numerator columns on B and A)."""
    field, col_b, col_a = num
    a, b = t.arms
    if a.N <= 0 or b.N <= 0:
        return None
    if t.steps:
        st = t.step_sums
        return float(st.T[col_a] / st.T[HT_D]), float(st.T[col_b] / st.T[HT_B])
    return float(getattr(a, field) / a.N), float(getattr(b, field) / b.N)


def error_ratio(t: UnitTally) -> float:
    """Point estimate p_B/p_A (request-weighted, or Hájek means under canary steps); NaN if undefined."""
    got = _arm_means(t, ("E", HT_A, HT_C))
    if got is None or got[0] <= 0.0:
        return math.inf if got is not None and got[1] > 0.0 else math.nan
    return got[1] / got[0]


def gmean_ratio(t: UnitTally) -> float:
    """Point estimate of the ratio of geometric-mean latencies (B/A); NaN with an empty arm."""
    got = _arm_means(t, ("Y", HT_U, HT_V))
    return math.nan if got is None else math.exp(got[1] - got[0])


def reward_diff(t: UnitTally) -> float:
    """Point estimate of mean reward B − A; NaN with an arm without rewards."""
    a, b = t.reward_arms
    if a.N <= 0 or b.N <= 0:
        return math.nan
    if t.reward_steps:
        st = t.reward_step_sums
        return float(st.T[HT_U] / st.T[HT_B] - st.T[HT_V] / st.T[HT_D])
    return b.Y / b.N - a.Y / a.N


def p99_quantile(t: UnitTally, arm: int) -> float:
    """The arm's p99 interpolated (log-linearly) between the thresholds; NaN outside them or before x_ref."""
    sums = t.tail(arm)
    if sums is None or sums.N <= 0:
        return math.nan
    share = sums.X / sums.N
    above = share > P99_P0
    if not above[0] or above[-1]:
        return math.nan
    j = int(np.argmin(above)) - 1  # share[j] > p0 ≥ share[j + 1]
    frac = (share[j] - P99_P0) / (share[j] - share[j + 1])
    return float(sums.x[j] * math.exp(frac * P99_LOG_STEP))


def p99_ratio(t: UnitTally) -> float:
    """Point estimate of p99_B/p99_A from the interpolated quantiles; NaN when either is unknown."""
    return p99_quantile(t, 1) / p99_quantile(t, 0)
