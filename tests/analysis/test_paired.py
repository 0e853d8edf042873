"""Paired shadow statistics: log-ratio mixture, sign test, agreement CS, McNemar."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import paired
from analysis.mixtures import beta_binomial_log_mixture
from analysis.paired import PairedTally
from tests.analysis.calib import bound

ALPHA = 0.05
LOG20 = float(np.log(20))


def test_nothing_paired_means_no_evidence() -> None:
    s = PairedTally()
    assert paired.log_ratio_log_e(s, 0.0, 1000.0, ALPHA, "greater") == 0.0
    assert paired.log_ratio_interval(s, 1000.0, ALPHA) == (0.0, float("inf"))
    assert paired.sign_log_e(0, 0, 1000.0, ALPHA) == 0.0
    assert paired.mcnemar_log_e(s, 100.0, ALPHA) == 0.0
    assert paired.agreement_verdict(s, 0.99, ALPHA, 5000.0) == ("UNDECIDED", 0.0, 1.0)


def test_batches_add_up_and_nan_is_skipped() -> None:
    d = np.array([0.1, np.nan, -0.2, 0.3])
    a = np.array([1.0, 0.0, np.nan, 1.0])
    whole = paired.update(PairedTally(), d, a)
    parts = paired.update(paired.update(PairedTally(), d[:2], a[:2]), d[2:], a[2:])
    assert whole == parts
    assert (whole.n_d, whole.n_agree, whole.agree) == (3, 3, 2)


def test_shadow_slowdown_is_detected_by_both_latency_tests() -> None:
    rng = np.random.default_rng(1)
    d = rng.normal(np.log(1.2), 0.3, 3000)
    s = paired.update(PairedTally(), log_ratio=d)
    assert paired.log_ratio_log_e(s, 0.05, 3000.0, ALPHA, "greater") >= LOG20
    lo, hi = paired.log_ratio_interval(s, 3000.0, ALPHA)
    assert lo < 1.2 < hi
    w = int(np.sum(d > np.log(1.05)))
    assert paired.sign_log_e(w, d.size, 3000.0, ALPHA, one_sided=True) >= LOG20


@pytest.mark.parametrize(("truth", "verdict"), [(0.995, "OK"), (0.98, "FAIL")])
def test_agreement_verdicts(truth: float, verdict: str) -> None:
    rng = np.random.default_rng(2)
    agree = (rng.random(20_000) < truth).astype(float)
    s = paired.update(PairedTally(), agree=agree)
    assert paired.agreement_verdict(s, 0.99, ALPHA, 5000.0)[0] == verdict


def test_agreement_cs_miscoverage_under_continuous_looks() -> None:
    """True agreement 0.99, checked every 100 pairs up to 10k: the CS excludes it in ≤ α + 3·SE of runs."""
    rng = np.random.default_rng(3)
    runs, n, every = 2000, 10_000, 100
    agree = rng.binomial(every, 0.99, (runs, n // every)).cumsum(axis=1)
    ns = every * np.arange(1, n // every + 1)
    g = 0.99
    log_m = beta_binomial_log_mixture(agree - g * ns, g * (1 - g) * ns, g * (1 - g) * 5000.0, g, 1 - g, ALPHA)
    excluded = log_m >= np.log(1 / ALPHA)
    assert np.mean(np.any(excluded, axis=1)) <= bound(ALPHA, runs)
    # The CS that agreement_verdict reports excludes 0.99 exactly when the test above rejects.
    for run in range(5):
        for look in (9, 49, 99):
            s = PairedTally(n_agree=int(ns[look]), agree=int(agree[run, look]))
            lo, hi = paired.agreement_verdict(s, 0.99, ALPHA, 5000.0)[1:]
            assert (not lo <= 0.99 <= hi) == bool(excluded[run, look])


def test_mcnemar_sees_a_more_accurate_shadow() -> None:
    rng = np.random.default_rng(4)
    primary = (rng.random(5000) < 0.90).astype(float)
    shadow = (rng.random(5000) < 0.95).astype(float)
    s = paired.update(PairedTally(), primary_correct=primary, shadow_correct=shadow)
    assert s.discordant_shadow > s.discordant_primary
    assert paired.mcnemar_log_e(s, 500.0, ALPHA, one_sided=True) >= LOG20
