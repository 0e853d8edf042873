"""Error-rate ratio r = p_B/p_A by event attribution (Lindon & Malek 2022): e-processes, estimate, CS.

Usage: `state = update(state, rho, in_b, err)`; `log_e = log_e_ratio(state, r0=1.0, side="greater")`

Given an error at a request routed to B with probability ρ, it came from B with probability
q(r; ρ) = ρr / (ρr + 1 - ρ), whatever the (drifting, shared) base rate. Under H0: r = r0 the arm labels of
error events are an exact martingale, valid under any ramp because ρ is logged. The e-process mixes the
likelihood ratio over a grid of r on one side of r0 (64 points of log r out to log 20 from log r0, weights
∝ N(log r0, 0.5²)). The state is the error count per arm and ρ (`RhoCounts`), so any batching is exact.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import expit  # type: ignore[import-untyped]

from analysis.counts import Array, BoolArray, RhoCounts, add_events
from analysis.mixtures import log_sum_exp

Side = Literal["greater", "less"]
"""`greater`: the alternative r > r0 (harm); `less`: r < r0 (non-inferiority at r0 = margin)."""

GRID_POINTS = 64
GRID_SPAN = float(np.log(20.0))
PRIOR_SD = 0.5

GRID_OFFSETS = GRID_SPAN * np.arange(1, GRID_POINTS + 1) / GRID_POINTS
"""|log r − log r0| of the grid points (r0 itself is left out: it would only add a constant to E)."""
_log_prior = -(GRID_OFFSETS**2) / (2 * PRIOR_SD**2)
GRID_LOG_WEIGHTS = _log_prior - log_sum_exp(_log_prior)


def update(state: RhoCounts, rho: Array, in_b: BoolArray, error: BoolArray) -> RhoCounts:
    """`state` plus the error events among these requests (ρ = P(routed to B) of each request)."""
    err = np.asarray(error, dtype=np.bool_)
    return add_events(state, np.asarray(rho)[err], np.asarray(in_b)[err])


def _log_norm(counts: RhoCounts, theta: Array) -> Array:
    """Σ_g n_g·log(ρ_g·e^θ + 1 - ρ_g) for every θ (any shape)."""
    rho = counts.rho
    lse = np.logaddexp(np.log(rho) + theta[..., None], np.log1p(-rho))
    return np.asarray(lse @ (counts.a + counts.b), dtype=np.float64)


def log_e_many(counts: RhoCounts, log_r0: Array, side: Side) -> Array:
    """The mixture log e-value for each null log r0 in `log_r0` (vectorised; 0 with no informative events)."""
    log_r0 = np.asarray(log_r0, dtype=np.float64)
    if counts.rho.size == 0:
        return np.zeros_like(log_r0)
    sign = 1.0 if side == "greater" else -1.0
    offsets = sign * GRID_OFFSETS
    theta = log_r0[..., None] + offsets
    b_total = float(counts.b.sum())
    ll = b_total * offsets - (_log_norm(counts, theta) - _log_norm(counts, log_r0)[..., None])
    return log_sum_exp(ll + GRID_LOG_WEIGHTS)


def log_e_ratio(counts: RhoCounts, r0: float, side: Side) -> float:
    """log E of H0: r = r0 (and the r on the other side of it) against r on `side` of r0."""
    return float(log_e_many(counts, np.asarray(np.log(r0)), side))


def log_e_one_split(b: Array, n: Array, rho: float, r0: float, side: Side) -> Array:
    """log E for many (B errors, all errors) count pairs at one constant split ρ (simulations, vectorised)."""
    sign = 1.0 if side == "greater" else -1.0
    b_, n_ = np.asarray(b, dtype=np.float64)[..., None], np.asarray(n, dtype=np.float64)[..., None]
    theta0 = float(np.log(r0))
    lse = np.logaddexp(np.log(rho) + theta0 + sign * GRID_OFFSETS, np.log1p(-rho))
    lse0 = float(np.logaddexp(np.log(rho) + theta0, np.log1p(-rho)))
    return log_sum_exp(b_ * sign * GRID_OFFSETS - n_ * (lse - lse0) + GRID_LOG_WEIGHTS)


def _score_root(counts: RhoCounts, pseudo: float) -> float:
    """The θ = log r maximising the attribution likelihood (concave in θ: Newton from the pooled guess)."""
    a, b = counts.a + pseudo, counts.b + pseudo
    n = a + b
    logit = np.log(counts.rho) - np.log1p(-counts.rho)
    theta = float(np.log(b.sum() / a.sum()) - np.average(logit, weights=n))
    for _ in range(50):
        q = expit(theta + logit)
        step = float((b.sum() - n @ q) / max(float(n @ (q * (1.0 - q))), 1e-300))
        theta = float(np.clip(theta + step, -50.0, 50.0))
        if abs(step) < 1e-12:
            break
    return theta


def ratio_estimate(counts: RhoCounts) -> float:
    """Maximum-likelihood r̂ (0 without B errors, inf without A errors, nan without informative errors)."""
    if counts.rho.size == 0:
        return float("nan")
    if counts.b.sum() == 0:
        return 0.0
    if counts.a.sum() == 0:
        return float("inf")
    return float(np.exp(_score_root(counts, 0.0)))


def _edge(counts: RhoCounts, centre: float, side: Side, ell: float) -> float:
    """The last log r0 on the far side of `centre` that the `side` test does not reject (±inf if none)."""
    step = -1.0 if side == "greater" else 1.0
    coarse = centre + step * np.arange(0.0, 8.01, 0.25)
    reject = log_e_many(counts, coarse, side) >= ell
    if not reject.any():
        return -np.inf if side == "greater" else np.inf
    i = int(np.argmax(reject))
    if i == 0:
        return centre
    fine = coarse[i - 1] + step * np.linspace(0.0, 0.25, 26)
    reject_f = log_e_many(counts, fine, side) >= ell
    j = int(np.argmax(reject_f)) if reject_f.any() else fine.size
    return float(fine[max(j - 1, 0)])


def confidence_interval(counts: RhoCounts, alpha: float) -> tuple[float, float]:
    """Anytime (1 - alpha) CS for r: the r0 neither one-sided test rejects at alpha/2 (hull on a grid)."""
    if counts.rho.size == 0:
        return 0.0, float("inf")
    centre = _score_root(counts, 0.5)
    ell = float(np.log(2.0 / alpha))
    lo = _edge(counts, centre, "greater", ell)
    hi = _edge(counts, centre, "less", ell)
    return float(np.exp(lo)), float(np.exp(hi))
