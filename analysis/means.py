"""Differences and ratios of arm means by design-based increments ψ and the normal mixture (GrowthBook form).

Usage: `state = update(state, y, in_b, rho)`; `log_e(contrast(state, 1.0), 0.0, n_star, alpha, "greater")`

With ρᵢ = P(request i routed to B), ψᵢ(c) = uᵢ − c·wᵢ where uᵢ = (yᵢ − mᵢ)·1{B}/ρᵢ + mᵢ and
wᵢ = (yᵢ − mᵢ)·1{A}/(1 − ρᵢ) + mᵢ has conditional mean μ_B(t) − c·μ_A(t) for any predictable centre mᵢ,
whatever the ramp and the drift (pooled arm means are confounded when the split changes). The centre is the
running mean of all earlier y (fixed per event, so batching does not change it); it removes the level of y
from ψ and makes ψ̄ as efficient as the difference of arm means at a constant split. The state keeps the
sums that give mean and variance of ψ(c) for any c: c = 1 is the difference, other c test ratios μ_B/μ_A.
The one-sample normal mixture on ψ is asymptotically valid (burn-in: the engine's minimum exposure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis.counts import Array, BoolArray
from analysis.mixtures import normal_log_mixture, normal_mixture_bound

Side = Literal["greater", "less", "two-sided"]


@dataclass(frozen=True, slots=True)
class PsiSums:
    """Running sums of u, w and their products, and of y (for the centre)."""

    n: int = 0
    su: float = 0.0
    sw: float = 0.0
    suu: float = 0.0
    suw: float = 0.0
    sww: float = 0.0
    sy: float = 0.0


@dataclass(frozen=True, slots=True)
class Contrast:
    """Sample mean and variance of ψ(c) over n increments."""

    n: int
    mean: float
    var: float


def update(state: PsiSums, y: Array, in_b: BoolArray, rho: Array) -> PsiSums:
    """`state` plus these observations, in order (`rho` = P(routed to B) of each; must be in (0, 1))."""
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        return state
    in_b = np.asarray(in_b, dtype=np.bool_)
    rho = np.asarray(rho, dtype=np.float64)
    seen = state.n + np.arange(y.size)
    prior = state.sy + np.concatenate([[0.0], np.cumsum(y)[:-1]])
    centre = np.where(seen > 0, prior / np.maximum(seen, 1), 0.0)
    dev = y - centre
    u = np.where(in_b, dev / rho, 0.0) + centre
    w = np.where(in_b, 0.0, dev / (1.0 - rho)) + centre
    return PsiSums(
        n=state.n + y.size,
        su=state.su + float(u.sum()),
        sw=state.sw + float(w.sum()),
        suu=state.suu + float(u @ u),
        suw=state.suw + float(u @ w),
        sww=state.sww + float(w @ w),
        sy=state.sy + float(y.sum()),
    )


def contrast(state: PsiSums, c: float) -> Contrast:
    """Mean and sample variance of ψ(c) = u − c·w (estimates μ_B − c·μ_A)."""
    n = state.n
    if n < 2:
        return Contrast(n, float("nan") if n == 0 else state.su - c * state.sw, float("nan"))
    mean = (state.su - c * state.sw) / n
    second = (state.suu - 2.0 * c * state.suw + c * c * state.sww) / n
    var = max(second - mean * mean, 0.0) * n / (n - 1)
    return Contrast(n, mean, var)


def arm_means(state: PsiSums) -> tuple[float, float]:
    """Design-based (Horvitz-Thompson, centred) estimates of (μ_A, μ_B)."""
    if state.n == 0:
        return float("nan"), float("nan")
    return state.sw / state.n, state.su / state.n


def _informative(c: Contrast) -> bool:
    return c.n >= 2 and c.var > 0.0 and np.isfinite(c.var)


def log_e(c: Contrast, delta0: float, n_star: float, alpha: float, side: Side) -> float:
    """Normal-mixture log E of H0: E[ψ] = delta0 against `side` (one-sided: the one-sided mixture)."""
    if not _informative(c):
        return 0.0
    s = (c.mean - delta0) * np.sqrt(c.n / c.var) * np.sqrt(c.n)
    if side == "two-sided":
        return float(normal_log_mixture(s, c.n, n_star, alpha))
    return float(normal_log_mixture(s if side == "greater" else -s, c.n, n_star, alpha, one_sided=True))


def z_bound(n: int, n_star: float, alpha: float) -> float:
    """|Z| at which the two-sided mixture reaches log(1/alpha) after n increments (inf at n = 0)."""
    if n <= 0:
        return float("inf")
    return float(normal_mixture_bound(n, alpha, n_star) / np.sqrt(n))


def half_width(c: Contrast, n_star: float, alpha: float) -> float:
    """Half-width of the (1 - alpha) confidence sequence ψ̄ ± half (inf until there is a variance)."""
    if not _informative(c):
        return float("inf")
    return float(z_bound(c.n, n_star, alpha) * np.sqrt(c.var / c.n))


def ratio_interval(state: PsiSums, n_star: float, alpha: float) -> tuple[float, float]:
    """(1 - alpha) CS for μ_B/μ_A (Fieller): the c where the two-sided test of E[ψ(c)] = 0 does not reject."""
    n = state.n
    if n < 2:
        return 0.0, float("inf")
    ub, wb = state.su / n, state.sw / n
    k = z_bound(n, n_star, alpha) ** 2 / (n - 1)
    vuu = state.suu / n - ub * ub
    vuw = state.suw / n - ub * wb
    vww = state.sww / n - wb * wb
    # (ū − c·w̄)² < k·V(c): a quadratic a·c² + b·c + d < 0.
    a = wb * wb - k * vww
    b = -2.0 * ub * wb + 2.0 * k * vuw
    d = ub * ub - k * vuu
    disc = b * b - 4.0 * a * d
    if a <= 0.0 or disc <= 0.0:
        return 0.0, float("inf")
    root = np.sqrt(disc)
    lo, hi = (-b - root) / (2.0 * a), (-b + root) / (2.0 * a)
    return max(float(lo), 0.0), float(hi)
