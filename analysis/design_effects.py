"""How much sticky users inflate the variance of per-request statistics: the design effect of a mean over
clustered rows (docs/statistics.md: why the unit of analysis must be the unit of assignment).

Usage: err_deff, latency_deff = design_effects(unit, error, latency_ms, n_units)
"""

from __future__ import annotations

import numpy as np

from analysis.populations import Array, BoolArray, IntArray


def design_effects(unit: IntArray, error: BoolArray, latency_ms: Array, n_units: int) -> tuple[float, float]:
    """Design effects (errors, log latency) of the rows given (one arm, or a whole population).

    The clustered variance of a ratio mean over the i.i.d. one, Σ_u(t_u − m·n_u)²/(s²·N); 1: no clustering.
    """
    n = np.bincount(unit, minlength=n_units).astype(np.float64)
    big_n = float(n.sum())
    out = []
    for x in (error.astype(np.float64), np.log(latency_ms)):
        t = np.bincount(unit, weights=x, minlength=n_units)
        m = float(t.sum()) / big_n
        s2 = float(np.mean((x - m) ** 2))
        out.append(float(np.sum((t - m * n) ** 2)) / (s2 * big_n) if s2 > 0 else float("nan"))
    return out[0], out[1]
