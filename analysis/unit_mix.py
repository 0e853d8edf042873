"""One-sided normal mixture with a half-normal prior: the e-value of every unit-level (sticky) test.

Usage: `log_e = mix1(s, info, tau=0.5)`; the test rejects at level a when `rejects(log_e, a)`.

`s` is the score and `info` = 1/Var the information of an effect estimate (s/info estimates the effect, on the
log scale for ratios); the prior on the effect is half-normal with sd `tau` over positive effects. The
e-value is this closed form of the *current* (s, info), not a running product of per-record factors.
It equals the one-sided normal mixture of `analysis.mixtures` at v = info, v_opt = 6.3288596053/tau².
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.special import log_ndtr  # type: ignore[import-untyped]

Array = npt.NDArray[np.float64]


def mix1(s: float, info: float, tau: float) -> float:
    """log e-value ½·ln(4/(1 + Iτ²)) + τ²s²/(2(1 + Iτ²)) + ln Φ(τs/√(1 + Iτ²)).

    0 when `info` ≤ 0 or is not finite, or `s` is not finite (no usable information).
    """
    if not tau > 0.0:
        raise ValueError(f"tau must be positive, got {tau}")
    if not (math.isfinite(info) and info > 0.0 and math.isfinite(s)):
        return 0.0
    t2 = tau * tau
    v = 1.0 + info * t2
    tail = float(log_ndtr(tau * s / math.sqrt(v)))
    return 0.5 * math.log(4.0 / v) + t2 * s * s / (2.0 * v) + tail


def mix1_array(s: npt.ArrayLike, info: npt.ArrayLike, tau: float) -> Array:
    """`mix1` element-wise over broadcast arrays of scores and informations."""
    if not tau > 0.0:
        raise ValueError(f"tau must be positive, got {tau}")
    s_ = np.asarray(s, dtype=np.float64)
    i_ = np.asarray(info, dtype=np.float64)
    s_, i_ = np.broadcast_arrays(s_, i_)
    ok = np.isfinite(i_) & (i_ > 0.0) & np.isfinite(s_)
    s0 = np.where(ok, s_, 0.0)
    v = 1.0 + np.where(ok, i_, 0.0) * tau * tau
    out = 0.5 * np.log(4.0 / v) + tau * tau * s0 * s0 / (2.0 * v) + log_ndtr(tau * s0 / np.sqrt(v))
    return np.asarray(np.where(ok, out, 0.0), dtype=np.float64)


def rejects(log_e: float, level: float) -> bool:
    """True when the e-value has reached 1/level (log_e ≥ ln(1/level)); never at level ≤ 0."""
    if not level > 0.0:
        return False
    return bool(log_e >= math.log(1.0 / level))
