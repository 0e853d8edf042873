"""Sample ratio mismatch: Dirichlet-multinomial Bayes factor against the planned split (Lindon & Malek 2022).

Usage: `state = add_events(state, rho, in_b)`; `log_bf = srm_log_bf_split(state)`; flagged if ≥ log(1/0.01).

Requests are grouped by their planned share ρ (`RhoCounts`), so a canary that changes its split is tested one
step (one ρ) at a time and the steps' Bayes factors multiply: each is a test martingale on its own
requests, and their product stays one under H0 however the steps interleave.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln  # type: ignore[import-untyped]

from analysis.counts import Array, RhoCounts
from analysis.mixtures import ArrayLike

SRM_ALPHA = 0.01
SRM_PRIOR_K = 1000.0


def srm_log_bf(counts: ArrayLike, p0: ArrayLike, k: float = SRM_PRIOR_K) -> Array:
    """log BF of Dirichlet(k·p0)-multinomial against multinomial(p0); arms on the last axis; 0 at n = 0."""
    y = np.asarray(counts, dtype=np.float64)
    p = np.broadcast_to(np.asarray(p0, dtype=np.float64), y.shape)
    prior = k * p
    n = y.sum(axis=-1)
    total = prior.sum(axis=-1)
    per_arm = gammaln(prior + y) - gammaln(prior) - y * np.log(p)
    return np.asarray(gammaln(total) - gammaln(total + n) + per_arm.sum(axis=-1), dtype=np.float64)


def srm_log_bf_split(requests: RhoCounts, k: float = SRM_PRIOR_K) -> float:
    """Sum over planned splits ρ of the two-arm log Bayes factor of (stable, candidate) request counts."""
    if requests.rho.size == 0:
        return 0.0
    y = np.stack([requests.a, requests.b], axis=1)
    p0 = np.stack([1.0 - requests.rho, requests.rho], axis=1)
    return float(srm_log_bf(y, p0, k).sum())


def srm_flagged(log_bf: float, alpha: float = SRM_ALPHA) -> bool:
    """True when the Bayes factor has reached 1/alpha."""
    return log_bf >= float(np.log(1.0 / alpha))
