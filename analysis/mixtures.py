"""Closed-form mixture boundaries: normal and beta-binomial log mixtures, bounds, inversion.

Usage: `log_e = normal_log_mixture(s, v, v_opt=1000.0)`; reject when `log_e >= log(1/alpha)`.

`s` is a sum of centred increments and `v` its intrinsic time (variance sum). Every function is vectorised
over numpy arrays, works in log space, returns 0 at `s = v = 0` and never NaN for valid inputs.
The forms agree with confseq 0.0.11 to 1e-8 (golden values in tests/analysis/test_mixtures.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy.special import betainc, betaln, log_ndtr  # type: ignore[import-untyped]

Array = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


def _ell(alpha_opt: float, one_sided: bool) -> float:
    # confseq tunes a one-sided mixture as a two-sided one at 2·alpha.
    return float(np.log(1.0 / (2.0 * alpha_opt if one_sided else alpha_opt)))


def normal_rho(v_opt: float, alpha_opt: float = 0.05, one_sided: bool = False) -> float:
    """Prior precision ρ of the normal mixture that is tightest at intrinsic time `v_opt`."""
    ell = _ell(alpha_opt, one_sided)
    return float(v_opt / (2.0 * ell + np.log(1.0 + 2.0 * ell)))


def normal_log_mixture(
    s: ArrayLike, v: ArrayLike, v_opt: float, alpha_opt: float = 0.05, one_sided: bool = False
) -> Array:
    """log of the Gaussian-mixture martingale at (s, v); one-sided mixes over positive drifts only."""
    s_, v_ = np.asarray(s, dtype=np.float64), np.asarray(v, dtype=np.float64)
    rho = normal_rho(v_opt, alpha_opt, one_sided)
    quad = s_**2 / (2.0 * (v_ + rho))
    if not one_sided:
        return np.asarray(0.5 * np.log(rho / (v_ + rho)) + quad, dtype=np.float64)
    tail = log_ndtr(s_ / np.sqrt(v_ + rho))
    return np.asarray(0.5 * np.log(4.0 * rho / (v_ + rho)) + quad + tail, dtype=np.float64)


def normal_mixture_bound(v: ArrayLike, alpha: float, v_opt: float, alpha_opt: float | None = None) -> Array:
    """Two-sided boundary on |s|: the normal log mixture equals log(1/alpha) there."""
    v_ = np.asarray(v, dtype=np.float64)
    rho = normal_rho(v_opt, alpha if alpha_opt is None else alpha_opt)
    return np.asarray(
        np.sqrt((v_ + rho) * (np.log1p(v_ / rho) + 2.0 * np.log(1.0 / alpha))), dtype=np.float64
    )


def beta_binomial_r(
    v_opt: ArrayLike, g: ArrayLike, h: ArrayLike, alpha_opt: float = 0.05, one_sided: bool = False
) -> Array:
    """Beta prior parameter r of the beta-binomial mixture tuned for intrinsic time `v_opt`."""
    gh = np.asarray(g, dtype=np.float64) * np.asarray(h, dtype=np.float64)
    rho = normal_rho(1.0, alpha_opt, one_sided) * np.asarray(v_opt, dtype=np.float64)
    return np.asarray(np.maximum(rho - gh, 1e-3 * gh), dtype=np.float64)


def _log_beta_x(a: Array, b: Array, x: ArrayLike) -> Array:
    if np.all(np.asarray(x) >= 1.0):
        return np.asarray(betaln(a, b), dtype=np.float64)
    return np.asarray(np.log(betainc(a, b, x)) + betaln(a, b), dtype=np.float64)


def beta_binomial_log_mixture(
    s: ArrayLike,
    v: ArrayLike,
    v_opt: ArrayLike,
    g: ArrayLike,
    h: ArrayLike,
    alpha_opt: float = 0.05,
    one_sided: bool = False,
) -> Array:
    """log of the beta-binomial mixture for increments in [-g, h] (Howard et al. 2021, general g, h).

    For a Bernoulli(p) count K over n trials use g = p, h = 1 - p, s = K - p·n, v = p(1 - p)·n.
    Every argument broadcasts (g and h may vary, e.g. when inverting over p).
    """
    s_, v_ = np.asarray(s, dtype=np.float64), np.asarray(v, dtype=np.float64)
    g_, h_ = np.asarray(g, dtype=np.float64), np.asarray(h, dtype=np.float64)
    r = beta_binomial_r(v_opt, g_, h_, alpha_opt, one_sided)
    x = h_ / (g_ + h_) if one_sided else np.ones(1)
    gh = g_ + h_
    head = (
        v_ / (g_ * h_) * np.log(gh)
        - (v_ + h_ * s_) / (h_ * gh) * np.log(g_)
        - (v_ - g_ * s_) / (g_ * gh) * np.log(h_)
    )
    a1, b1 = (r + v_ - g_ * s_) / (g_ * gh), (r + v_ + h_ * s_) / (h_ * gh)
    a0, b0 = r / (g_ * gh), r / (h_ * gh)
    return np.asarray(head + _log_beta_x(a1, b1, x) - _log_beta_x(a0, b0, x), dtype=np.float64)


def log_sum_exp(x: Array, axis: int = -1) -> Array:
    """log Σ exp(x) along `axis`, stable for large x (scipy's logsumexp has a high per-call cost)."""
    top = np.max(x, axis=axis, keepdims=True)
    return np.asarray(np.squeeze(top, axis) + np.log(np.sum(np.exp(x - top), axis=axis)), dtype=np.float64)


def grid_root(
    f: Callable[[Array], Array], lo: Array, hi: Array, rounds: int = 5, points: int = 48
) -> tuple[Array, Array]:
    """Vectorised root bracketing for f(lo) < 0 <= f(hi), one row per problem: each round evaluates a grid.

    `f` maps an (m, points) array to an array of that shape; returns the final (lo, hi), with f(hi) >= 0.
    Fewer numpy calls than bisection, so it is fast for the handful of roots a decision needs.
    """
    lo, hi = np.asarray(lo, dtype=np.float64).copy(), np.asarray(hi, dtype=np.float64).copy()
    frac = np.linspace(0.0, 1.0, points + 1)[1:]
    for _ in range(rounds):
        grid = lo[:, None] + (hi - lo)[:, None] * frac
        ok = f(grid) >= 0.0
        first = np.where(ok.any(axis=1), np.argmax(ok, axis=1), points - 1)
        rows = np.arange(lo.size)
        hi = grid[rows, first]
        lo = np.where(first > 0, grid[rows, np.maximum(first - 1, 0)], lo)
    return lo, hi


def bernoulli_cs(successes: float, n: float, alpha: float, n_opt: float) -> tuple[float, float]:
    """Anytime (1 - alpha) confidence sequence for a mean in [0, 1] (beta-binomial mixture, g = π, h = 1 - π).

    Valid for any [0, 1]-valued data (a [0, 1] variable is sub-Bernoulli). Returns (0, 1) at n = 0.
    """
    if n <= 0:
        return 0.0, 1.0
    ell = np.log(1.0 / alpha)
    mean = min(max(successes / n, 0.0), 1.0)

    def excess(pi: Array) -> Array:
        pi = np.clip(pi, 1e-12, 1.0 - 1e-12)
        v = pi * (1.0 - pi)
        val = beta_binomial_log_mixture(successes - pi * n, v * n, v * n_opt, pi, 1.0 - pi, alpha)
        return np.asarray(val - ell, dtype=np.float64)

    # Distance t from the mean towards each end, as rows of one vectorised search.
    ends = np.array([0.0, 1.0])
    far = excess(ends) >= 0.0
    _, t = grid_root(lambda t: excess(mean + t * (ends - mean)[:, None]), np.zeros(2), np.ones(2))
    bounds = np.where(far, mean + t * (ends - mean), ends)
    return float(bounds[0]), float(bounds[1])
