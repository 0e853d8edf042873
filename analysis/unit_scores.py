"""Scores (s, I) of the unit-level tests as pure functions of the sums: errors, means, p99 tails, SRM.

Usage: `s, info = error_score(a, b, c=1.0)`; harm `mix1(s, info, tau)`, pass `mix1(-s, info, tau)`.

The unit is the observation: variances are cluster sandwiches over units, Q_g(t, a) = S_tt − 2a·S_tn + a²·S_nn
(clamped ≥ 0) times h_g = m_g/(m_g − 1), with the null-constrained estimates plugged in. s/I estimates the
effect (on the log scale for ratios) and I = 1/Var; s = I = 0 when a test has no usable information (an arm
with fewer than two units, Var = 0 or I not finite). The plural forms (`error_scores`, …) are vectorised
over the null value; the singular ones return floats.

Error floor f (non-inferiority null p_B ≥ c·p_A + f): the constrained estimates solve the pooled moment
equation Σ(errors − expected) = 0 under that null, p̃_A = (E_A + E_B − f·N_B)/(N_A + c·N_B) clipped to
[0, (1 − f)/c], p̃_B = c·p̃_A + f; the variance of D = E_B/N_B − c·E_A/N_A − f is floored per arm at the
binomial variance of these null values, and the effect is measured on the log scale of p_B/(c·p_A + f), so
I = p̃_B²/Var and s = D·p̃_B/Var. At f = 0 these are exactly the forms without a floor (docs/statistics.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from analysis.srm import SRM_PRIOR_K, srm_log_bf
from analysis.unit_sums import HT_A, HT_B, HT_C, HT_D, HT_U, HT_V, ArmSums, Array, StepSums, TailSums

P99_P0 = 0.01


def _h(m: float) -> float:
    return m / (m - 1.0)


def _q(stt: float | Array, stn: float | Array, snn: float, a: Array) -> Array:
    """Q(t, a) = S_tt − 2a·S_tn + a²·S_nn, clamped ≥ 0."""
    return np.maximum(stt - 2.0 * a * stn + a * a * snn, 0.0)


def _scaled(d: Array, scale: Array, var: Array) -> tuple[Array, Array]:
    """(s, I) = (D·scale/Var, scale²/Var); both 0 where Var ≤ 0 or either is not finite."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        info = scale * scale / var
        s = d * scale / var
    ok = (var > 0.0) & np.isfinite(info) & np.isfinite(s) & (info > 0.0)
    return np.where(ok, s, 0.0), np.where(ok, info, 0.0)


def _zeros(x: Array) -> tuple[Array, Array]:
    return np.zeros_like(x), np.zeros_like(x)


def _usable(a: ArmSums, b: ArmSums) -> bool:
    return a.m > 1 and b.m > 1 and a.N > 0 and b.N > 0


def _check(c: Array, floor: float) -> None:
    if np.any(~(c > 0.0)):
        raise ValueError("the ratio c must be positive")
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"the error floor must be in [0, 1), got {floor}")


def error_scores(a: ArmSums, b: ArmSums, c: npt.ArrayLike, floor: float = 0.0) -> tuple[Array, Array]:
    """(s, I) of the request-weighted error ratio against the null p_B = c·p_A + floor, constant split."""
    c_ = np.asarray(c, dtype=np.float64)
    _check(c_, floor)
    if not _usable(a, b):
        return _zeros(c_)
    p_a = np.clip((a.E + b.E - floor * b.N) / (a.N + c_ * b.N), 0.0, (1.0 - floor) / c_)
    p_b = c_ * p_a + floor
    v_a = np.maximum(_h(a.m) * _q(a.See, a.Sen, a.Snn, p_a), p_a * (1.0 - p_a) * a.N)
    v_b = np.maximum(_h(b.m) * _q(b.See, b.Sen, b.Snn, p_b), p_b * (1.0 - p_b) * b.N)
    d = b.E / b.N - c_ * a.E / a.N - floor
    var = v_b / b.N**2 + c_ * c_ * v_a / a.N**2
    return _scaled(d, p_b, var)


def mean_diff_scores(a: ArmSums, b: ArmSums, delta: npt.ArrayLike) -> tuple[Array, Array]:
    """(s, I) of the difference of request-weighted means of y (B − A) against the null value δ."""
    d_ = np.asarray(delta, dtype=np.float64)
    if not _usable(a, b):
        return _zeros(d_)
    mu_a = (a.Y + b.Y - d_ * b.N) / (a.N + b.N)
    mu_b = mu_a + d_
    v_a = _h(a.m) * _q(a.Syy, a.Syn, a.Snn, mu_a)
    v_b = _h(b.m) * _q(b.Syy, b.Syn, b.Snn, mu_b)
    d = b.Y / b.N - a.Y / a.N - d_
    return _scaled(d, np.ones_like(d), v_b / b.N**2 + v_a / a.N**2)


def _step_usable(st: StepSums) -> bool:
    return st.m_A > 1 and st.m_B > 1 and st.M > 1 and st.T[HT_B] > 0 and st.T[HT_D] > 0


def _sandwich(
    st: StepSums, b_: tuple[int, int], a_: tuple[int, int], mu_b: Array, mu_a: Array
) -> tuple[Array, ...]:
    """Per-arm Σφ² and the cross sum Σφ_B·φ_A with φ = (t − μ·n)/T_n, for (t, n) columns on B and on A."""
    (t, n), (r, k) = b_, a_
    tb, td = st.T[n], st.T[k]
    phi_b = np.maximum(st.s(t, t) - 2.0 * mu_b * st.s(t, n) + mu_b**2 * st.s(n, n), 0.0) / tb**2
    phi_a = np.maximum(st.s(r, r) - 2.0 * mu_a * st.s(r, k) + mu_a**2 * st.s(k, k), 0.0) / td**2
    cross = (st.s(t, r) - mu_a * st.s(t, k) - mu_b * st.s(n, r) + mu_a * mu_b * st.s(n, k)) / (tb * td)
    return phi_b, phi_a, cross


def error_scores_steps(st: StepSums, c: npt.ArrayLike, floor: float = 0.0) -> tuple[Array, Array]:
    """(s, I) of the error ratio from Hájek ratios of HT totals clustered by unit (canary steps).

    The arms' Hájek means p̂ are pooled with record-count weights, p̃_A = (N_A·p̂_A + N_B·(p̂_B − f))/(N_A +
    c·N_B); the small-sample factor and the binomial floor apply per arm, the cross-unit term uses M/(M − 1).
    With one split throughout this equals `error_scores` exactly (and it is never below the plain
    M/(M − 1)-sandwich with a pooled floor).
    """
    c_ = np.asarray(c, dtype=np.float64)
    _check(c_, floor)
    if not _step_usable(st):
        return _zeros(c_)
    tb, td = st.T[HT_B], st.T[HT_D]
    hat_b, hat_a = st.T[HT_A] / tb, st.T[HT_C] / td
    p_a = np.clip(
        (st.N_A * hat_a + st.N_B * (hat_b - floor)) / (st.N_A + c_ * st.N_B), 0.0, (1.0 - floor) / c_
    )
    p_b = c_ * p_a + floor
    phi_b, phi_a, cross = _sandwich(st, (HT_A, HT_B), (HT_C, HT_D), p_b, p_a)
    bin_b = p_b * (1.0 - p_b) * st.W_B / tb**2
    bin_a = c_ * c_ * p_a * (1.0 - p_a) * st.W_A / td**2
    var = (
        np.maximum(_h(st.m_B) * phi_b, bin_b)
        + np.maximum(c_ * c_ * _h(st.m_A) * phi_a, bin_a)
        - 2.0 * c_ * _h(st.M) * cross
    )
    var = np.maximum(var, bin_b + bin_a)
    return _scaled(hat_b - c_ * hat_a - floor, p_b, var)


def mean_diff_scores_steps(st: StepSums, delta: npt.ArrayLike) -> tuple[Array, Array]:
    """(s, I) of the difference of Hájek means of y (u/b on B, v/d on A) against δ (canary steps).

    μ̃ pools the arms' means with record-count weights; h per arm, M/(M − 1) on the cross term; with one
    split throughout this equals `mean_diff_scores` exactly.
    """
    d_ = np.asarray(delta, dtype=np.float64)
    if not _step_usable(st):
        return _zeros(d_)
    hat_b, hat_a = st.T[HT_U] / st.T[HT_B], st.T[HT_V] / st.T[HT_D]
    mu_a = (st.N_A * hat_a + st.N_B * (hat_b - d_)) / (st.N_A + st.N_B)
    phi_b, phi_a, cross = _sandwich(st, (HT_U, HT_B), (HT_V, HT_D), mu_a + d_, mu_a)
    var = _h(st.m_B) * phi_b + _h(st.m_A) * phi_a - 2.0 * _h(st.M) * cross
    d = hat_b - hat_a - d_
    return _scaled(d, np.ones_like(d), var)


def error_score(a: ArmSums, b: ArmSums, c: float, floor: float = 0.0) -> tuple[float, float]:
    """(s, I) at one ratio c, constant split (see `error_scores`)."""
    s, info = error_scores(a, b, c, floor)
    return float(s), float(info)


def gmean_score(a: ArmSums, b: ArmSums, delta: float) -> tuple[float, float]:
    """(s, I) of the log geometric-mean latency ratio at δ = ln c (y: κ-centred log latency), one split."""
    s, info = mean_diff_scores(a, b, delta)
    return float(s), float(info)


def mean_diff_score(a: ArmSums, b: ArmSums, delta: float) -> tuple[float, float]:
    """(s, I) of the difference of means of y (raw rewards in a reward tally) at δ, constant split."""
    s, info = mean_diff_scores(a, b, delta)
    return float(s), float(info)


def error_score_steps(st: StepSums, c: float, floor: float = 0.0) -> tuple[float, float]:
    """(s, I) at one ratio c, canary-step form (see `error_scores_steps`)."""
    s, info = error_scores_steps(st, c, floor)
    return float(s), float(info)


def gmean_score_steps(st: StepSums, delta: float) -> tuple[float, float]:
    """(s, I) of the log geometric-mean latency ratio at δ = ln c, canary-step form."""
    s, info = mean_diff_scores_steps(st, delta)
    return float(s), float(info)


def tail_scores(t: TailSums, p0: float = P99_P0) -> tuple[Array, Array]:
    """Per threshold x_j, (s, I) of the share of records above x_j against p0 (one arm).

    "q > x_j" is mix1(s, I), "q < x_j" is mix1(−s, I), with q the (1 − p0) quantile.
    """
    if t.m <= 1 or t.N <= 0:
        return _zeros(np.zeros_like(t.X))
    v = np.maximum(_h(t.m) * _q(t.Skk, t.Skn, t.Snn, np.full_like(t.X, p0)), p0 * (1.0 - p0) * t.N)
    d = t.X / t.N - p0
    return _scaled(d, np.full_like(d, p0), v / t.N**2)


def srm_units_log_bf(counts: Mapping[float, tuple[int, int]], k: float = SRM_PRIOR_K) -> float:
    """Sum over π of the Dirichlet-multinomial log Bayes factor of (units on A, on B) against (1 − π, π).

    Fed with units at their first analysed record (never request counts); 0 without units.
    """
    if not counts:
        return 0.0
    pis = np.array(list(counts), dtype=np.float64)
    y = np.array([counts[p] for p in counts], dtype=np.float64)
    return float(srm_log_bf(y, np.stack([1.0 - pis, pis], axis=1), k).sum())
