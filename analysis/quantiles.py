"""Latency quantile confidence sequences (Howard & Ramdas 2022, beta-binomial mixture) on a log histogram.

Usage: `h = update(LatencyHistogram.empty(), latency_ms)`; `lo, hi = quantile_cs(h, 0.99, alpha, t_opt)`

For a value x, K(x) = #{Xᵢ ≤ x} and s = K(x) − p·n is a martingale in n when x is the p-quantile, so
CS(q_p) = {x : logM(K(x) − p·n, p(1 − p)·n) < log(1/α)}; logM is convex in s, so the CS is an interval.
The state is a histogram on log-spaced edges (0.4% apart, 1 µs to 10⁷ ms): K is known exactly at every
edge and the reported bounds are edges on the safe side, so the CS is conservative by at most one bin and
exact under any batching. Comparing arms: `ratio_log_e` finds the best cut x with evidence q_B > x and
q_A < x/c (or the reverse); both arms' one-sided evidence must pass log(2/α), which is the rule
"lower(CS_B) > c·upper(CS_A), each at α/2". It is reported minus log 2, so it rejects at α iff ≥ log(1/α).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from analysis.counts import Array
from analysis.mixtures import ArrayLike, beta_binomial_log_mixture, grid_root

LOG_LOW = float(np.log(1e-3))
LOG_STEP = 0.004
EDGES_N = int(np.ceil((np.log(1e7) - LOG_LOW) / LOG_STEP)) + 1
LOG_EDGES = LOG_LOW + LOG_STEP * np.arange(EDGES_N)
EDGES = np.exp(LOG_EDGES)
"""Bin j (1 ≤ j < EDGES_N) holds values in (EDGES[j-1], EDGES[j]]; bin 0 everything ≤ EDGES[0]."""

Side = Literal["greater", "less"]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class LatencyHistogram:
    """Counts per log bin (EDGES_N + 1 bins, the last one above the top edge), and K at every edge."""

    counts: IntArray
    cum: IntArray
    """cum[j] = K(EDGES[j]) = #{x ≤ EDGES[j]} (kept with the counts: every query needs it)."""
    n: int = 0

    @staticmethod
    def empty() -> LatencyHistogram:
        """No observations."""
        return _histogram(np.zeros(EDGES_N + 1, dtype=np.int64))


def _histogram(counts: IntArray) -> LatencyHistogram:
    cum = np.asarray(np.cumsum(counts), dtype=np.int64)
    counts.setflags(write=False)
    cum.setflags(write=False)
    return LatencyHistogram(counts, cum[:EDGES_N], int(cum[-1]))


def update(h: LatencyHistogram, latency_ms: Array) -> LatencyHistogram:
    """`h` plus these latencies (values ≤ 0 count in the lowest bin)."""
    x = np.asarray(latency_ms, dtype=np.float64)
    if x.size == 0:
        return h
    logx = np.log(np.maximum(x, EDGES[0]))
    idx = np.clip(np.ceil((logx - LOG_LOW) / LOG_STEP - 1e-9), 0, EDGES_N).astype(np.int64)
    return _histogram(h.counts + np.bincount(idx, minlength=EDGES_N + 1))


def _log_m(s: Array, n: ArrayLike, p: float, t_opt: ArrayLike, alpha: float) -> Array:
    q = p * (1.0 - p)
    return beta_binomial_log_mixture(s, q * np.asarray(n), q * np.asarray(t_opt), p, 1.0 - p, alpha)


def count_thresholds(n: Array, p: float, t_opt: Array, alpha: float) -> tuple[Array, Array]:
    """s_lo < 0 < s_hi where logM = log(1/alpha), per (n, t_opt); ∓inf where no count that far out rejects.

    logM is below log(1/alpha) at s = 0 and convex in s, so each side has at most one crossing; the
    returned thresholds are on the rejecting side of it. All arms are solved in one vectorised search.
    """
    ell = float(np.log(1.0 / alpha))
    ends = np.concatenate([-p * n, (1.0 - p) * n])
    nn, tt = np.concatenate([n, n]), np.concatenate([t_opt, t_opt])
    far = _log_m(ends, nn, p, tt, alpha) >= ell

    def f(t: Array) -> Array:
        return _log_m(t * ends[:, None], nn[:, None], p, tt[:, None], alpha) - ell

    _, t = grid_root(f, np.zeros(ends.size), np.ones(ends.size), rounds=4, points=40)
    sides = np.concatenate([np.full(n.size, -np.inf), np.full(n.size, np.inf)])
    s = np.where(far, t * ends, sides)
    return s[: n.size], s[n.size :]


def quantile_estimate(h: LatencyHistogram, p: float) -> float:
    """The p-quantile at bin resolution (geometric middle of its bin); nan when empty."""
    n = h.n
    if n == 0:
        return float("nan")
    j = int(np.searchsorted(h.cum, p * n, side="left"))
    if j == 0:
        return float(EDGES[0])
    if j >= EDGES_N:
        return float("inf")
    return float(np.exp(LOG_EDGES[j] - 0.5 * LOG_STEP))


def quantile_cs_arms(
    hists: Sequence[LatencyHistogram], p: float, alpha: float, t_opts: Sequence[float]
) -> list[tuple[float, float]]:
    """Anytime (1 - alpha) CS for the p-quantile of each histogram: (0, inf) until the data can bound it."""
    n = np.array([h.n for h in hists], dtype=np.float64)
    s_lo, s_hi = count_thresholds(n, p, np.asarray(t_opts, dtype=np.float64), alpha)
    out = []
    for h, k, lo_k, hi_k in zip(hists, n, s_lo, s_hi, strict=True):
        s = h.cum - p * k
        below = np.flatnonzero(s <= lo_k)
        above = np.flatnonzero(s >= hi_k)
        lo = float(EDGES[below[-1]]) if below.size and k > 0 else 0.0
        hi = float(EDGES[above[0]]) if above.size and k > 0 else float("inf")
        out.append((lo, hi))
    return out


def quantile_cs(h: LatencyHistogram, p: float, alpha: float, t_opt: float) -> tuple[float, float]:
    """Anytime (1 - alpha) CS for the p-quantile of one histogram."""
    return quantile_cs_arms([h], p, alpha, [t_opt])[0]


def _one_side(h: LatencyHistogram, idx: IntArray, p: float, t_opt: float, alpha: float, low: bool) -> Array:
    """Evidence that the quantile lies above EDGES[idx] (`low`: few values below) or below it."""
    n = h.n
    s = h.cum[idx] - p * n
    s = np.minimum(s, 0.0) if low else np.maximum(s, 0.0)
    return np.maximum(_log_m(s.astype(np.float64), n, p, t_opt, alpha), 0.0)


def ratio_log_e(
    hb: LatencyHistogram,
    ha: LatencyHistogram,
    p: float,
    c: float,
    t_opt: tuple[float, float],
    alpha: float,
    side: Side,
) -> float:
    """Evidence that q_B > c·q_A (`greater`) or q_B < c·q_A (`less`), on the log(1/alpha) scale."""
    if hb.n == 0 or ha.n == 0:
        return 0.0
    qb, qa = quantile_estimate(hb, p), quantile_estimate(ha, p)
    shift = np.log(c) / LOG_STEP
    jb = int(np.searchsorted(LOG_EDGES, np.log(qb)))
    ja = int(np.searchsorted(LOG_EDGES, np.log(qa) + np.log(c)))
    lo, hi = (ja - 1, jb + 1) if side == "greater" else (jb - 1, ja + 1)
    if hi <= lo:
        return 0.0
    j = np.arange(max(lo, 0), min(hi, EDGES_N - 1) + 1)
    # A's edge on the safe side of x/c: below it for evidence q_A < x/c, above it for q_A > x/c.
    ja_cut = np.floor(j - shift) if side == "greater" else np.ceil(j - shift)
    ja_idx = np.clip(ja_cut, 0, EDGES_N - 1).astype(np.int64)
    eb = _one_side(hb, j, p, t_opt[0], alpha, low=side == "greater")
    ea = _one_side(ha, ja_idx, p, t_opt[1], alpha, low=side != "greater")
    best = float(np.max(np.minimum(eb, ea))) if j.size else 0.0
    return max(best - float(np.log(2.0)), 0.0)
