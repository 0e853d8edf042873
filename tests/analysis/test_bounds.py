"""Decision bounds: the edge of a one-sided test's rejection region, found from the estimate outwards."""

from __future__ import annotations

import math

from analysis.bounds import RATIO, difference, lower_bound, upper_bound


def test_edges_of_monotone_regions() -> None:
    assert math.isclose(lower_bound(lambda c: c < 1.3, RATIO, 2.0), 1.3, rel_tol=1e-6)
    assert math.isclose(upper_bound(lambda c: c > 1.7, RATIO, 1.0), 1.7, rel_tol=1e-6)
    assert math.isclose(lower_bound(lambda d: d < -0.2, difference(1.0), 0.1), -0.2, abs_tol=1e-6)


def test_far_tails_that_stop_rejecting_do_not_hide_the_edge() -> None:
    # Unit-level score tests lose power at absurd nulls (c → 0): the edge near the estimate is what counts.
    def harm(c: float) -> bool:
        return 0.05 < c < 0.8

    def passes(c: float) -> bool:
        return 1.25 < c < 30.0

    assert math.isclose(lower_bound(harm, RATIO, 1.0), 0.8, rel_tol=1e-6)
    assert math.isclose(upper_bound(passes, RATIO, 1.0), 1.25, rel_tol=1e-6)


def test_nothing_rejects_means_unbounded() -> None:
    assert lower_bound(lambda c: False, RATIO, 1.0) == 0.0
    assert upper_bound(lambda c: False, RATIO, 1.0) == math.inf
    assert lower_bound(lambda d: False, difference(1.0), 0.0) == -math.inf
