"""Sample ratio mismatch: per-split grouping, calibration, detection."""

from __future__ import annotations

import numpy as np

from analysis.counts import RhoCounts, add_events
from analysis.srm import SRM_ALPHA, srm_flagged, srm_log_bf, srm_log_bf_split
from tests.analysis.calib import bound


def test_no_requests_no_evidence() -> None:
    assert srm_log_bf_split(RhoCounts.empty()) == 0.0


def test_splits_are_tested_separately_and_added() -> None:
    rho = np.r_[np.full(1000, 0.1), np.full(1000, 0.5)]
    in_b = np.r_[np.arange(1000) < 130, np.arange(1000) < 480]
    state = add_events(RhoCounts.empty(), rho, in_b)
    expected = srm_log_bf(np.array([870, 130]), np.array([0.9, 0.1])) + srm_log_bf(
        np.array([520, 480]), np.array([0.5, 0.5])
    )
    assert srm_log_bf_split(state) == float(expected)


def test_stable_records_log_one_minus_rho_and_still_group_together() -> None:
    state = add_events(RhoCounts.empty(), np.array([0.1, 1 - 0.9, 0.1]), np.array([True, False, False]))
    assert state.rho.size == 1


def test_false_alarms_under_continuous_looks() -> None:
    """A/A at a 10% split, looked at every 100 requests up to 100k (reference: 0.6–0.7%, α = 0.01)."""
    rng = np.random.default_rng(5)
    runs, n, every = 2000, 100_000, 100
    b = rng.binomial(every, 0.1, (runs, n // every)).cumsum(axis=1)
    a = every * np.arange(1, n // every + 1) - b
    log_bf = srm_log_bf(np.stack([a, b], axis=-1), np.array([0.9, 0.1]))
    assert np.mean(np.any(log_bf >= np.log(1 / SRM_ALPHA), axis=1)) <= bound(SRM_ALPHA, runs)


def test_a_45_55_split_is_flagged_early() -> None:
    rng = np.random.default_rng(6)
    b = rng.binomial(100, 0.55, (200, 50)).cumsum(axis=1)
    a = 100 * np.arange(1, 51) - b
    log_bf = srm_log_bf(np.stack([a, b], axis=-1), np.array([0.5, 0.5]))
    first = np.argmax(log_bf >= np.log(100), axis=1)
    assert np.all(log_bf.max(axis=1) >= np.log(100))
    assert 0.75 * 1500 <= 100 * (np.median(first) + 1) <= 1.25 * 1500 * 1.5
    assert srm_flagged(float(log_bf[0, -1]))
