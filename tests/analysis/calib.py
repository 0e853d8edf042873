"""Helpers for calibration tests: the α + 3·SE bound and the literal event-attribution recursion."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from analysis.error_rate import GRID_LOG_WEIGHTS, GRID_OFFSETS
from analysis.mixtures import log_sum_exp

Array = npt.NDArray[np.float64]


def bound(alpha: float, runs: int) -> float:
    """α + 3·SE for a rate estimated from `runs` independent runs."""
    return alpha + 3.0 * float(np.sqrt(alpha * (1.0 - alpha) / runs))


def attribution_log_e_path(x: Array, rho: Array, r0: float, side: str) -> Array:
    """log E after each event, by the per-event update of ll_k (x = 1 if the error was on B)."""
    sign = 1.0 if side == "greater" else -1.0
    r = r0 * np.exp(sign * GRID_OFFSETS)

    def q(rr: Array | float) -> Array:
        return np.asarray(rho[:, None] * rr / (rho[:, None] * rr + 1.0 - rho[:, None]), dtype=np.float64)

    qk, q0 = q(r), q(r0)
    inc = x[:, None] * np.log(qk / q0) + (1.0 - x[:, None]) * np.log((1.0 - qk) / (1.0 - q0))
    return log_sum_exp(np.cumsum(inc, axis=0) + GRID_LOG_WEIGHTS)
