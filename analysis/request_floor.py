"""Error-rate non-inferiority with an absolute floor, per request: H0 p_B ≥ c·p_A + f.

Usage: `log_e = floor_log_e(tally.requests, tally.errors, c=1.2, floor=0.001)`

The event-attribution test cannot say anything without error events, so two arms that never fail could never
pass it. This test is the unit-level score test (docs/statistics.md, "sticky assignment") with each request as
its own unit: Horvitz–Thompson totals weighted 1/ρ on the candidate and 1/(1 − ρ) on stable, so canary steps
with a drifting base rate do not confound it, the null estimates constrained to p_B = c·p_A + f, the
variance floored at the binomial variance of those null values, and the one-sided normal mixture with
τ = ln 1.2.
Everything comes from the per-ρ counts the engine keeps anyway (requests and errors per arm and ρ).
"""

from __future__ import annotations

import numpy as np

from analysis.counts import RhoCounts
from analysis.unit_mix import mix1

PASS_TAU = float(np.log(1.2))


def _per_rho(requests: RhoCounts, errors: RhoCounts) -> tuple[np.ndarray, ...]:
    """(ρ, n_A, n_B, e_A, e_B) aligned on the ρ of `requests`."""
    rho = requests.rho
    e_a, e_b = np.zeros(rho.size), np.zeros(rho.size)
    if errors.rho.size:
        idx = np.searchsorted(rho, errors.rho)
        e_a[idx], e_b[idx] = errors.a, errors.b
    return rho, requests.a, requests.b, e_a, e_b


def floor_log_e(
    requests: RhoCounts, errors: RhoCounts, c: float, floor: float, tau: float = PASS_TAU
) -> float:
    """log E against H0: p_B ≥ c·p_A + floor (0 until both arms have requests)."""
    rho, n_a, n_b, e_a, e_b = _per_rho(requests, errors)
    if rho.size == 0 or n_a.sum() < 2 or n_b.sum() < 2:
        return 0.0
    w_b, w_a = 1.0 / rho, 1.0 / (1.0 - rho)
    t_a, t_b = float(e_b @ w_b), float(n_b @ w_b)
    t_c, t_d = float(e_a @ w_a), float(n_a @ w_a)
    s_aa, s_bb = float(e_b @ w_b**2), float(n_b @ w_b**2)
    s_cc, s_dd = float(e_a @ w_a**2), float(n_a @ w_a**2)
    p_a = min(max((t_c + t_a - floor * t_b) / (t_d + c * t_b), 0.0), 1.0)
    p_b = min(c * p_a + floor, 1.0)
    diff = t_a / t_b - c * t_c / t_d - floor
    # Each request is its own unit: S_ab = S_aa (e² = e) and the cross-arm products vanish.
    phi = (s_aa - 2 * p_b * s_aa + p_b**2 * s_bb) / t_b**2 + c**2 * (
        s_cc - 2 * p_a * s_cc + p_a**2 * s_dd
    ) / t_d**2
    m = float(n_a.sum() + n_b.sum())
    binomial = p_b * (1 - p_b) * s_bb / t_b**2 + c**2 * p_a * (1 - p_a) * s_dd / t_d**2
    var = max(m / (m - 1) * max(phi, 0.0), binomial)
    if not var > 0.0 or not np.isfinite(var):
        return 0.0
    scale = p_b
    return mix1(-diff * scale / var, scale**2 / var, tau)
