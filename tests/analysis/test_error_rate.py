"""Event-attribution e-processes for the error-rate ratio: exactness, batching, calibration, power."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis import error_rate
from analysis.counts import RhoCounts, add_events
from analysis.simulate import drift_profile
from tests.analysis.calib import attribution_log_e_path, bound

ALPHA = 0.05
LOG20 = float(np.log(1 / ALPHA))


def test_zero_events_give_log_e_zero_and_an_unbounded_interval() -> None:
    empty = RhoCounts.empty()
    assert error_rate.log_e_ratio(empty, 1.0, "greater") == 0.0
    assert error_rate.log_e_ratio(empty, 1.2, "less") == 0.0
    assert error_rate.confidence_interval(empty, ALPHA) == (0.0, float("inf"))
    assert np.isnan(error_rate.ratio_estimate(empty))


def test_grouped_counts_equal_the_per_event_recursion_of_stats_md() -> None:
    rng = np.random.default_rng(3)
    rho = rng.choice([0.05, 0.1, 0.25, 0.5], size=400)
    x = (rng.random(400) < rho * 1.3 / (rho * 1.3 + 1 - rho)).astype(float)
    cases: tuple[tuple[error_rate.Side, float], ...] = (("greater", 1.0), ("less", 1.2), ("greater", 1.05))
    for side, r0 in cases:
        path = attribution_log_e_path(x, rho, r0, side)
        state = RhoCounts.empty()
        for i in (0, 57, 199, 399):
            state = add_events(RhoCounts.empty(), rho[: i + 1], x[: i + 1] > 0.5)
            assert error_rate.log_e_ratio(state, r0, side) == pytest.approx(path[i], abs=1e-9)


def test_the_vectorised_one_split_form_agrees() -> None:
    state = RhoCounts(np.array([0.1]), np.array([80.0]), np.array([20.0]))
    sides: tuple[tuple[error_rate.Side, float], ...] = (("greater", 1.0), ("less", 1.2))
    for side, r0 in sides:
        got = error_rate.log_e_one_split(np.array([20.0]), np.array([100.0]), 0.1, r0, side)
        assert float(got[0]) == pytest.approx(error_rate.log_e_ratio(state, r0, side), abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.05, 0.1, 0.9, 0.5, 1.0, 0.0]), st.booleans(), st.booleans()), max_size=60
    ),
    st.integers(1, 7),
)
def test_one_batch_equals_event_by_event(events: list[tuple[float, bool, bool]], chunk: int) -> None:
    rho = np.array([e[0] for e in events], dtype=np.float64)
    in_b = np.array([e[1] for e in events], dtype=np.bool_)
    err = np.array([e[2] for e in events], dtype=np.bool_)
    whole = error_rate.update(RhoCounts.empty(), rho, in_b, err)
    pieces = RhoCounts.empty()
    for i in range(0, len(events), chunk):
        pieces = error_rate.update(pieces, rho[i : i + chunk], in_b[i : i + chunk], err[i : i + chunk])
    np.testing.assert_array_equal(whole.rho, pieces.rho)
    np.testing.assert_array_equal(whole.a, pieces.a)
    np.testing.assert_array_equal(whole.b, pieces.b)
    cases: tuple[tuple[error_rate.Side, float], ...] = (("greater", 1.0), ("less", 1.2))
    for side, r0 in cases:
        assert error_rate.log_e_ratio(whole, r0, side) == error_rate.log_e_ratio(pieces, r0, side)


def _false_rate(
    runs: int, n: int, r: float, r0: float, side: str, ramp: bool, drift: bool, seed: int
) -> float:
    """Share of runs whose e-process ever reaches 1/α (looked at after every error event)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    share = (
        np.select([t < 20_000, t < 40_000, t < 70_000], [0.05, 0.1, 0.25], 0.5) if ramp else np.full(n, 0.1)
    )
    err_f, _ = drift_profile(t, drift)
    hits = 0
    for _ in range(runs):
        in_b = rng.random(n) < share
        err = rng.random(n) < 0.01 * err_f * np.where(in_b, r, 1.0)
        path = attribution_log_e_path(in_b[err].astype(float), share[err], r0, side)
        hits += bool(np.any(path >= LOG20))
    return hits / runs


@pytest.mark.parametrize(
    ("r", "r0", "side", "ramp", "drift"),
    [
        (1.0, 1.0, "greater", False, False),
        (1.0, 1.0, "greater", True, True),
        (1.2, 1.2, "less", False, False),
        (1.2, 1.2, "less", True, True),
    ],
)
def test_a_a_and_boundary_calibration_under_continuous_looks(
    r: float, r0: float, side: str, ramp: bool, drift: bool
) -> None:
    runs = 400
    rate = _false_rate(runs, 100_000, r, r0, side, ramp, drift, seed=11)
    assert rate <= bound(ALPHA, runs)


def test_time_to_detect_a_doubling_matches_stats_md() -> None:
    """docs/statistics.md: median 9.8k requests (both arms) at 1% base rate, 10% canary, α = 0.05, r0 = 1."""
    rng = np.random.default_rng(5)
    times = []
    for _ in range(300):
        in_b = rng.random(40_000) < 0.1
        err = rng.random(40_000) < np.where(in_b, 0.02, 0.01)
        idx = np.flatnonzero(err)
        path = attribution_log_e_path(in_b[idx].astype(float), np.full(idx.size, 0.1), 1.0, "greater")
        hit = np.flatnonzero(path >= LOG20)
        times.append(idx[hit[0]] + 1 if hit.size else np.inf)
    assert 0.75 * 9_800 <= np.median(times) <= 1.25 * 9_800


def test_estimate_and_interval_cover_the_truth() -> None:
    rng = np.random.default_rng(8)
    n = 300_000
    in_b = rng.random(n) < 0.2
    err = rng.random(n) < np.where(in_b, 0.015, 0.01)
    state = error_rate.update(RhoCounts.empty(), np.full(n, 0.2), in_b, err)
    lo, hi = error_rate.confidence_interval(state, ALPHA)
    assert lo < 1.5 < hi
    assert lo < error_rate.ratio_estimate(state) < hi
    assert error_rate.log_e_ratio(state, 1.0, "greater") > LOG20
