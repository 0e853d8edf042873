"""Paired shadow data (the same input to primary and shadow): latency ratio, sign test, agreement, McNemar.

Usage: `state = update(PairedTally(), log_ratio=d, agree=a)`; `agreement_verdict(state, 0.99, alpha, n_opt)`

- Latency: dᵢ = log(L_shadow / L_primary); one-sample normal mixture on dᵢ (`log_ratio_log_e`), or for heavy
  tails the exact sequential sign test on Wᵢ = 1{dᵢ > log(1 + δ)} (beta-binomial, g = h = ½).
- Top-1 agreement aᵢ ∈ {0, 1}: anytime CS for the agreement rate (beta-binomial with g = π₀); OK when the
  whole CS is above the requirement, FAIL when wholly below.
- Accuracy once labels arrive: sequential McNemar, a sign test on the discordant pairs.
Numeric outputs: an exceedance rate 1{eᵢ > tol} is a Bernoulli stream, so `mixtures.bernoulli_cs` applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from analysis import means
from analysis.counts import Array
from analysis.mixtures import bernoulli_cs, beta_binomial_log_mixture

Verdict = Literal["OK", "FAIL", "UNDECIDED"]


@dataclass(frozen=True, slots=True)
class PairedTally:
    """Sufficient statistics of the paired streams (each counts only pairs where its value is known)."""

    n_d: int = 0
    sum_d: float = 0.0
    sum_d2: float = 0.0
    n_agree: int = 0
    agree: int = 0
    discordant_primary: int = 0
    """Pairs where only the primary was right."""
    discordant_shadow: int = 0
    """Pairs where only the shadow was right."""


MAX_LOG = 700.0
"""Largest log-ratio bound turned into a ratio (e^710 overflows a float)."""


def update(
    state: PairedTally,
    log_ratio: Array | None = None,
    agree: Array | None = None,
    primary_correct: Array | None = None,
    shadow_correct: Array | None = None,
) -> PairedTally:
    """`state` plus a batch of pairs; NaN entries (value unknown for that pair) are skipped."""
    d = _known(log_ratio)
    a = _known(agree)
    n_p = n_s = 0
    if primary_correct is not None and shadow_correct is not None:
        pc, sc = np.asarray(primary_correct, dtype=np.float64), np.asarray(shadow_correct, dtype=np.float64)
        ok = ~(np.isnan(pc) | np.isnan(sc))
        n_p = int(np.sum((pc[ok] > 0.5) & (sc[ok] < 0.5)))
        n_s = int(np.sum((pc[ok] < 0.5) & (sc[ok] > 0.5)))
    return PairedTally(
        n_d=state.n_d + d.size,
        sum_d=state.sum_d + float(d.sum()),
        sum_d2=state.sum_d2 + float(d @ d),
        n_agree=state.n_agree + a.size,
        agree=state.agree + int(np.sum(a > 0.5)),
        discordant_primary=state.discordant_primary + n_p,
        discordant_shadow=state.discordant_shadow + n_s,
    )


def _known(x: Array | None) -> Array:
    if x is None:
        return np.zeros(0)
    x = np.asarray(x, dtype=np.float64)
    return x[~np.isnan(x)]


def log_ratio_contrast(state: PairedTally) -> means.Contrast:
    """Mean and sample variance of the log latency ratios."""
    n = state.n_d
    if n < 2:
        return means.Contrast(n, state.sum_d / n if n else float("nan"), float("nan"))
    mean = state.sum_d / n
    return means.Contrast(n, mean, max(state.sum_d2 / n - mean * mean, 0.0) * n / (n - 1))


def log_ratio_log_e(state: PairedTally, delta: float, n_star: float, alpha: float, side: means.Side) -> float:
    """Normal-mixture log E of H0: E[d] = log(1 + delta) (shadow slower by the factor 1 + delta)."""
    return means.log_e(log_ratio_contrast(state), float(np.log1p(delta)), n_star, alpha, side)


def log_ratio_interval(state: PairedTally, n_star: float, alpha: float) -> tuple[float, float]:
    """(1 - alpha) CS for the geometric-mean latency ratio shadow/primary."""
    c = log_ratio_contrast(state)
    half = means.half_width(c, n_star, alpha)
    if not np.isfinite(half) or c.mean + half > MAX_LOG:  # e^710 overflows: the bound is +∞ either way
        return (float(np.exp(c.mean - half)) if np.isfinite(half) else 0.0), float("inf")
    return float(np.exp(c.mean - half)), float(np.exp(c.mean + half))


def sign_log_e(successes: int, n: int, n_opt: float, alpha: float, one_sided: bool = False) -> float:
    """Exact sequential sign test of P(success) = ½ (beta-binomial, g = h = ½); one-sided: against > ½."""
    return float(
        beta_binomial_log_mixture(successes - 0.5 * n, 0.25 * n, 0.25 * n_opt, 0.5, 0.5, alpha, one_sided)
    )


def agreement_verdict(
    state: PairedTally, requirement: float, alpha: float, n_opt: float
) -> tuple[Verdict, float, float]:
    """OK / FAIL / UNDECIDED for agreement ≥ `requirement`, with the (1 - alpha) CS of the agreement rate."""
    lo, hi = bernoulli_cs(float(state.agree), float(state.n_agree), alpha, n_opt)
    if lo > requirement:
        return "OK", lo, hi
    if hi < requirement:
        return "FAIL", lo, hi
    return "UNDECIDED", lo, hi


def mcnemar_log_e(state: PairedTally, n_opt: float, alpha: float, one_sided: bool = False) -> float:
    """Sequential McNemar: sign test on discordant pairs; one-sided: against "the shadow is more accurate"."""
    n = state.discordant_primary + state.discordant_shadow
    return sign_log_e(state.discordant_shadow, n, n_opt, alpha, one_sided)
