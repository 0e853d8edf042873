"""Quantile confidence sequences: coverage under continuous looks, the arm comparison, batching, n = 0."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import quantiles
from analysis.quantiles import LatencyHistogram
from tests.analysis.calib import bound

ALPHA = 0.05


def test_empty_histogram_gives_an_unbounded_cs_and_no_evidence() -> None:
    h = LatencyHistogram.empty()
    assert quantiles.quantile_cs(h, 0.99, ALPHA, 5000) == (0.0, float("inf"))
    assert quantiles.ratio_log_e(h, h, 0.5, 1.05, (1000, 9000), ALPHA, "greater") == 0.0
    assert np.isnan(quantiles.quantile_estimate(h, 0.5))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0.01, 1e5), min_size=1, max_size=80), st.integers(1, 9))
def test_one_batch_equals_event_by_event(xs: list[float], chunk: int) -> None:
    x = np.array(xs)
    whole = quantiles.update(LatencyHistogram.empty(), x)
    pieces = LatencyHistogram.empty()
    for i in range(0, x.size, chunk):
        pieces = quantiles.update(pieces, x[i : i + chunk])
    np.testing.assert_array_equal(whole.counts, pieces.counts)


def test_histogram_counts_match_exact_counts_at_edges() -> None:
    rng = np.random.default_rng(1)
    x = np.exp(rng.normal(4, 1, 10_000))
    cum = np.cumsum(quantiles.update(LatencyHistogram.empty(), x).counts)
    for j in (100, 2000, 2400, 3000):
        assert abs(int(cum[j]) - int(np.sum(x <= quantiles.EDGES[j]))) == 0


@pytest.mark.parametrize("p", [0.5, 0.99])
def test_cs_covers_the_true_quantile_under_continuous_looks(p: float) -> None:
    """Miscoverage ever, looking after every 50 observations up to 20k: ≤ α + 3·SE."""
    rng = np.random.default_rng(7)
    runs, n, every = 600, 20_000, 50
    x = np.exp(rng.normal(0.0, 0.5, (runs, n)))
    q = float(np.exp(0.5 * {0.5: 0.0, 0.99: 2.3263478740408408}[p]))
    below = np.cumsum(x <= q, axis=1)[:, every - 1 :: every]
    ns = np.arange(every, n + 1, every, dtype=np.float64)
    s_lo, s_hi = quantiles.count_thresholds(ns, p, np.full(ns.size, 5000.0), ALPHA)
    s = below - p * ns
    miss = np.any((s <= s_lo) | (s >= s_hi), axis=1)
    assert miss.mean() <= bound(ALPHA, runs)


def test_histogram_cs_contains_the_true_quantile() -> None:
    rng = np.random.default_rng(9)
    h = quantiles.update(LatencyHistogram.empty(), np.exp(rng.normal(np.log(50), 0.5, 30_000)))
    for p, z in ((0.5, 0.0), (0.99, 2.3263478740408408)):
        lo, hi = quantiles.quantile_cs(h, p, ALPHA, 30_000)
        assert lo < 50 * np.exp(0.5 * z) < hi


@pytest.mark.parametrize(
    ("p", "c", "side"), [(0.5, 1.0, "greater"), (0.99, 1.10, "less"), (0.5, 1.05, "less")]
)
def test_arm_comparison_is_calibrated_at_its_boundary(p: float, c: float, side: quantiles.Side) -> None:
    """q_B = c·q_A exactly: rejecting either 'q_B > c·q_A' or 'q_B < c·q_A' happens ≤ α + 3·SE of runs."""
    rng = np.random.default_rng(13)
    runs, looks, per_b = 150, 25, 300
    hits = 0
    for _ in range(runs):
        hb, ha, hit = LatencyHistogram.empty(), LatencyHistogram.empty(), False
        for _ in range(looks):
            hb = quantiles.update(hb, c * np.exp(rng.normal(3.9, 0.5, per_b)))
            ha = quantiles.update(ha, np.exp(rng.normal(3.9, 0.5, 9 * per_b)))
            log_e = quantiles.ratio_log_e(hb, ha, p, c, (5000.0, 45000.0), ALPHA, side)
            hit |= log_e >= np.log(1 / ALPHA)
        hits += hit
    assert hits / runs <= bound(ALPHA, runs)


def test_a_slower_tail_is_detected() -> None:
    rng = np.random.default_rng(17)
    hb = quantiles.update(LatencyHistogram.empty(), 1.3 * np.exp(rng.normal(3.9, 0.5, 5_000)))
    ha = quantiles.update(LatencyHistogram.empty(), np.exp(rng.normal(3.9, 0.5, 45_000)))
    assert quantiles.ratio_log_e(hb, ha, 0.99, 1.10, (5000.0, 45000.0), ALPHA, "greater") >= np.log(20)
    assert quantiles.ratio_log_e(hb, ha, 0.99, 1.10, (5000.0, 45000.0), ALPHA, "less") == 0.0
