"""Rewards (feedback joined to requests): the difference of arm means by ψ, and a relative goal test.

Usage: `state = update(state, reward, in_b, rho)`; `goal_log_e(state, "increase", 0.02, n_star, alpha)`

Only records with a reward count (matured feedback); each reward keeps its request's arm and ρ at routing,
so the design-based ψ of `analysis.means` applies unchanged. A goal "increase by at least m" is the
one-sided test of μ_B > (1 + m)·μ_A, i.e. E[ψ(1 + m)] > 0; "decrease" tests μ_B < (1 − m)·μ_A. For rewards
known to lie in [0, 1], `mixtures.bernoulli_cs` gives an exact (non-asymptotic) CS of each arm's mean.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from analysis import means
from analysis.counts import Array, BoolArray

Direction = Literal["increase", "decrease"]


def update(state: means.PsiSums, reward: Array, in_b: BoolArray, rho: Array) -> means.PsiSums:
    """`state` plus the records whose reward is known (NaN means no feedback yet)."""
    r = np.asarray(reward, dtype=np.float64)
    known = ~np.isnan(r)
    return means.update(state, r[known], np.asarray(in_b)[known], np.asarray(rho)[known])


def difference(state: means.PsiSums, n_star: float, alpha: float) -> tuple[float, float, float]:
    """Estimate of μ_B − μ_A with its (1 - alpha) CS."""
    c = means.contrast(state, 1.0)
    half = means.half_width(c, n_star, alpha)
    if not np.isfinite(half):
        return c.mean, -np.inf, np.inf
    return c.mean, c.mean - half, c.mean + half


def goal_factor(direction: Direction, min_effect: float) -> float:
    """The c with H0: μ_B = c·μ_A that a goal must reject (1 ± min_effect)."""
    return 1.0 + min_effect if direction == "increase" else 1.0 - min_effect


def goal_log_e(
    state: means.PsiSums, direction: Direction, min_effect: float, n_star: float, alpha: float
) -> float:
    """log E that the candidate moved the mean reward in `direction` by at least `min_effect` (relative)."""
    c = means.contrast(state, goal_factor(direction, min_effect))
    return means.log_e(c, 0.0, n_star, alpha, "greater" if direction == "increase" else "less")
