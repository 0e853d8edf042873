"""The confidence bounds a decision used: where a one-sided test at a given null stops rejecting.

Usage: `lo = lower_bound(harm_rejects_at, RATIO)`; `hi = upper_bound(pass_rejects_at, RATIO)`

A harm test of H0 "candidate ≤ c × stable" rejects for small c and stops at some c*; that c* is the lower
confidence bound at the test's level, and "harm" means c* > harmMargin. A non-inferiority test of H0
"candidate ≥ c × stable" rejects for large c; the smallest such c is the upper bound, and "pass" means it is
below the margin. Reporting these (rather than a separately tuned two-sided interval) makes every printed
interval say exactly what the decision said. Found by bisection, on the log scale for ratios.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ITERATIONS = 26
STEP = 0.005
"""First step of the outward walk, as a share of half the search range (then doubling)."""


@dataclass(frozen=True, slots=True)
class Scale:
    """Where a bound is searched: `log` (ratios, in [e^lo, e^hi]) or linear (differences, in [lo, hi])."""

    log: bool
    lo: float
    hi: float

    def value(self, x: float) -> float:
        """The parameter at search coordinate `x`."""
        return float(np.exp(x)) if self.log else x


RATIO = Scale(True, -7.0, 7.0)
"""Ratios candidate/stable between e^-7 and e^7 (beyond that a bound is reported as 0 or +∞)."""


def difference(span: float) -> Scale:
    """Differences candidate − stable within ±`span`."""
    return Scale(False, -abs(span), abs(span))


def _coord(scale: Scale, start: float) -> float:
    """The search coordinate of `start` (the point estimate), or the middle when it is unusable."""
    if scale.log:
        ok = np.isfinite(start) and start > 0.0
        return float(np.clip(np.log(start), scale.lo, scale.hi)) if ok else 0.0
    return float(np.clip(start, scale.lo, scale.hi)) if np.isfinite(start) else 0.5 * (scale.lo + scale.hi)


def _bisect(rejects: Callable[[float], bool], scale: Scale, yes: float, no: float) -> float:
    """Narrow [yes, no] (rejecting at `yes`, not at `no`) to the edge; returns the rejecting side."""
    for _ in range(ITERATIONS):
        mid = 0.5 * (yes + no)
        yes, no = (mid, no) if rejects(scale.value(mid)) else (yes, mid)
    return scale.value(yes)


def _walk(
    rejects: Callable[[float], bool], scale: Scale, start: float, step: float
) -> tuple[float, float] | None:
    """From `start` (not rejecting) step by `step`, doubling, to a rejecting point: (it, the one before)."""
    here, width = start, abs(step)
    limit = scale.lo if step < 0 else scale.hi
    while (here > limit) if step < 0 else (here < limit):
        nxt = max(here - width, limit) if step < 0 else min(here + width, limit)
        if rejects(scale.value(nxt)):
            return nxt, here
        here, width = nxt, 2 * width
    return None


def lower_bound(rejects: Callable[[float], bool], scale: Scale = RATIO, start: float = float("nan")) -> float:
    """sup{c : rejects(c)} for a test that rejects below some c, searched downward from `start` (the
    estimate: the test never rejects there); 0 (or −∞) when it rejects nowhere below."""
    x0 = _coord(scale, start)
    if rejects(scale.value(x0)):
        found: tuple[float, float] | None = (x0, scale.hi)
        if rejects(scale.value(scale.hi)):
            return float("inf")
    else:
        found = _walk(rejects, scale, x0, -STEP * _span(scale))
    if found is None:
        return 0.0 if scale.log else -float("inf")
    return _bisect(rejects, scale, *found)


def upper_bound(rejects: Callable[[float], bool], scale: Scale = RATIO, start: float = float("nan")) -> float:
    """inf{c : rejects(c)} for a test that rejects above some c, searched upward from `start`; +∞ when it
    rejects nowhere above."""
    x0 = _coord(scale, start)
    if rejects(scale.value(x0)):
        found: tuple[float, float] | None = (x0, scale.lo)
        if rejects(scale.value(scale.lo)):
            return 0.0 if scale.log else -float("inf")
    else:
        found = _walk(rejects, scale, x0, STEP * _span(scale))
    if found is None:
        return float("inf")
    return _bisect(rejects, scale, *found)


def _span(scale: Scale) -> float:
    return (scale.hi - scale.lo) / 2.0
