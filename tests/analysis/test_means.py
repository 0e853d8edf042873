"""ψ increments and the normal mixture: batching, n = 0, A/A under a drifting ramp, naive repeated tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats  # type: ignore[import-untyped]

from analysis import means
from analysis.simulate import drift_profile
from tests.analysis.calib import bound

ALPHA = 0.05
LOG20 = float(np.log(1 / ALPHA))


def test_nothing_observed_means_log_e_zero_and_infinite_half_width() -> None:
    c = means.contrast(means.PsiSums(), 1.0)
    assert means.log_e(c, 0.0, 1000.0, ALPHA, "greater") == 0.0
    assert means.log_e(c, 0.0, 1000.0, ALPHA, "two-sided") == 0.0
    assert means.half_width(c, 1000.0, ALPHA) == float("inf")
    assert means.ratio_interval(means.PsiSums(), 1000.0, ALPHA) == (0.0, float("inf"))
    assert means.z_bound(0, 1000.0, ALPHA) == float("inf")


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-5, 5), st.booleans(), st.sampled_from([0.05, 0.1, 0.5, 0.9])),
        min_size=1,
        max_size=50,
    ),
    st.integers(1, 9),
)
def test_one_batch_equals_event_by_event(rows: list[tuple[float, bool, float]], chunk: int) -> None:
    y = np.array([r[0] for r in rows])
    in_b = np.array([r[1] for r in rows])
    rho = np.array([r[2] for r in rows])
    whole = means.update(means.PsiSums(), y, in_b, rho)
    pieces = means.PsiSums()
    for i in range(0, y.size, chunk):
        pieces = means.update(pieces, y[i : i + chunk], in_b[i : i + chunk], rho[i : i + chunk])
    for name in ("n", "su", "sw", "suu", "suw", "sww", "sy"):
        assert getattr(pieces, name) == pytest.approx(getattr(whole, name), rel=1e-9, abs=1e-9)


def test_psi_estimates_the_difference_and_the_ratio() -> None:
    rng = np.random.default_rng(2)
    n = 200_000
    rho = np.where(np.arange(n) < n // 2, 0.1, 0.4)
    in_b = rng.random(n) < rho
    y = rng.normal(np.where(in_b, 11.0, 10.0), 2.0)
    s = means.update(means.PsiSums(), y, in_b, rho)
    c = means.contrast(s, 1.0)
    half = means.half_width(c, 50_000.0, ALPHA)
    assert c.mean - half < 1.0 < c.mean + half
    lo, hi = means.ratio_interval(s, 50_000.0, ALPHA)
    assert lo < 1.1 < hi < 1.2


def _ramp_with_drift(
    rng: np.random.Generator, n: int, lift: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.arange(n, dtype=np.float64)
    share = np.select([t < 5_000, t < 10_000, t < 20_000], [0.05, 0.1, 0.25], 0.5)
    _, lat_f = drift_profile(t * 5, True)  # a faster cycle than the engine's, so the ramp meets it
    trend = 0.3 * t / n  # latency creeping up while the candidate's share grows: the confounder
    in_b = rng.random(n) < share
    y = np.log(50.0 * lat_f) + trend + 0.5 * rng.standard_normal(n) + np.where(in_b, np.log(lift), 0.0)
    return y, in_b, share


@pytest.mark.parametrize(
    ("lift", "delta0", "side"), [(1.0, 0.0, "greater"), (1.05, float(np.log(1.05)), "less")]
)
def test_psi_mixture_is_calibrated_under_a_drifting_ramp(
    lift: float, delta0: float, side: means.Side
) -> None:
    """A/A (harm side) and a candidate exactly at the ×1.05 margin (non-inferiority side)."""
    rng = np.random.default_rng(21)
    runs, n, look = 300, 40_000, 400
    hits = 0
    for _ in range(runs):
        y, in_b, share = _ramp_with_drift(rng, n, lift)
        s, hit = means.PsiSums(), False
        for i in range(0, n, look):
            s = means.update(s, y[i : i + look], in_b[i : i + look], share[i : i + look])
            if s.n >= 1000:
                hit |= means.log_e(means.contrast(s, 1.0), delta0, 20_000.0, ALPHA, side) >= LOG20
        hits += hit
    assert hits / runs <= bound(ALPHA, runs)


def test_pooled_arm_means_are_confounded_by_a_drifting_ramp() -> None:
    """Why ψ: the difference of pooled arm means rejects an A/A far more often than α (reference: 81%)."""
    rng = np.random.default_rng(22)
    runs, hits = 100, 0
    for _ in range(runs):
        y, in_b, _ = _ramp_with_drift(rng, 40_000, 1.0)
        ya, yb = y[~in_b], y[in_b]
        z = (yb.mean() - ya.mean()) / np.sqrt(yb.var() / yb.size + ya.var() / ya.size)
        hits += abs(z) > stats.norm.ppf(1 - ALPHA / 2)
    assert hits / runs > 0.2


def test_naive_repeated_welch_testing_exceeds_twenty_percent() -> None:
    """The sanity check of docs/statistics.md: a fixed-horizon test repeated at 100 looks is far above α."""
    rng = np.random.default_rng(4)
    runs, per_look, looks = 2000, 50, 100
    a = rng.standard_normal((runs, per_look * looks))
    b = rng.standard_normal((runs, per_look * looks))
    n = per_look * np.arange(1, looks + 1)
    ends = n - 1
    mean_a, mean_b = np.cumsum(a, 1)[:, ends] / n, np.cumsum(b, 1)[:, ends] / n
    var_a = np.cumsum(a * a, 1)[:, ends] / n - mean_a**2
    var_b = np.cumsum(b * b, 1)[:, ends] / n - mean_b**2
    t = (mean_b - mean_a) / np.sqrt((var_a + var_b) / n)
    naive = np.mean(np.any(np.abs(t) > stats.norm.ppf(1 - ALPHA / 2), axis=1))
    assert naive > 0.20
