"""Rewards: only known rewards count; difference estimate; relative goal tests."""

from __future__ import annotations

import numpy as np

from analysis import means, rewards

ALPHA = 0.05


def test_missing_rewards_are_skipped() -> None:
    s = rewards.update(
        means.PsiSums(), np.array([1.0, np.nan, 0.0]), np.array([True, True, False]), np.full(3, 0.5)
    )
    assert s.n == 2


def test_goal_tests_and_difference() -> None:
    rng = np.random.default_rng(1)
    n = 100_000
    rho = np.full(n, 0.3)
    in_b = rng.random(n) < rho
    r = (rng.random(n) < np.where(in_b, 0.22, 0.20)).astype(float)
    s = rewards.update(means.PsiSums(), r, in_b, rho)
    est, lo, hi = rewards.difference(s, 50_000.0, ALPHA)
    assert lo < 0.02 < hi
    assert lo < est < hi
    assert rewards.goal_log_e(s, "increase", 0.0, 50_000.0, ALPHA) >= np.log(20)
    assert rewards.goal_log_e(s, "increase", 0.3, 50_000.0, ALPHA) < 0.0
    assert rewards.goal_log_e(s, "decrease", 0.0, 50_000.0, ALPHA) < 0.0
    assert rewards.goal_factor("decrease", 0.1) == 0.9


def test_no_rewards_no_evidence() -> None:
    s = means.PsiSums()
    assert rewards.goal_log_e(s, "increase", 0.1, 1000.0, ALPHA) == 0.0
    est, lo, hi = rewards.difference(s, 1000.0, ALPHA)
    assert np.isnan(est)
    assert (lo, hi) == (-np.inf, np.inf)
