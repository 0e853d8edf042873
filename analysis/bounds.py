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


def lower_bound(rejects: Callable[[float], bool], scale: Scale = RATIO) -> float:
    """sup{c : rejects(c)} for a test that rejects below some c (0 or −span when it never does)."""
    if not rejects(scale.value(scale.lo)):
        return 0.0 if scale.log else -float("inf")
    if rejects(scale.value(scale.hi)):
        return float("inf")
    lo, hi = scale.lo, scale.hi
    for _ in range(ITERATIONS):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rejects(scale.value(mid)) else (lo, mid)
    return scale.value(lo)


def upper_bound(rejects: Callable[[float], bool], scale: Scale = RATIO) -> float:
    """inf{c : rejects(c)} for a test that rejects above some c (+∞ when it never does)."""
    if not rejects(scale.value(scale.hi)):
        return float("inf")
    if rejects(scale.value(scale.lo)):
        return 0.0 if scale.log else -float("inf")
    lo, hi = scale.lo, scale.hi
    for _ in range(ITERATIONS):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if rejects(scale.value(mid)) else (mid, hi)
    return scale.value(hi)
