"""Unit-level tests: golden values, exact zeros, the canary-step form, the error floor, p99, SRM on units."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.unit_estimands import (
    ERROR_FLOOR,
    TAU_ERROR_HARM,
    TAU_ERROR_PASS,
    error_log_e,
    error_ratio,
    gmean_log_e,
    gmean_ratio,
    p99_harm,
    p99_lower,
    p99_pass,
    p99_quantile,
    p99_ratio,
    p99_upper,
    reward_diff,
    reward_log_e,
    srm_log_e,
)
from analysis.unit_mix import mix1
from analysis.unit_scores import (
    error_score,
    error_score_steps,
    gmean_score,
    gmean_score_steps,
    mean_diff_score,
    mean_diff_scores_steps,
    srm_units_log_bf,
    tail_scores,
)
from analysis.unit_sums import ArmSums, TailSums
from analysis.unit_tally import UnitTally
from tests.analysis.test_unit_tally import _feed
from tests.analysis.unit_sim import sticky_stream, tally_of

ERR_A = ArmSums(m=9000, N=180000, Snn=2.5e7, E=1800, Sen=260000, See=4200)
ERR_B = ArmSums(m=1000, N=20000, Snn=2.8e6, E=300, Sen=45000, See=800)
LAT_A = ArmSums(m=9000, N=180000, Snn=2.5e7, Y=1200, Syn=3.1e5, Syy=4.9e5)
LAT_B = ArmSums(m=1000, N=20000, Snn=2.8e6, Y=1500, Syn=2.6e5, Syy=1.1e5)
LN12, LN105 = math.log(1.2), math.log(1.05)


def test_error_golden_values() -> None:
    s, info = error_score(ERR_A, ERR_B, 1.0)
    assert (s, info) == pytest.approx((90.9550277918, 191.0055583628), abs=1e-8)
    assert mix1(s, info, 0.5) == pytest.approx(19.9615271899, abs=1e-8)
    s, info = error_score(ERR_A, ERR_B, 1.2)
    assert (s, info) == pytest.approx((53.5901926445, 220.6654991243), abs=1e-8)
    assert mix1(-s, info, LN12) == pytest.approx(-2.5786813940, abs=1e-8)


def test_latency_golden_values() -> None:
    s, info = gmean_score(LAT_A, LAT_B, LN105)
    assert (s, info) == pytest.approx((81.8805724612, 4189.7284813180), abs=1e-8)
    assert mix1(s, info, 0.1) == pytest.approx(-0.5164306844, abs=1e-8)
    assert mix1(-s, info, LN105) == pytest.approx(-1.9497262115, abs=1e-8)
    assert mean_diff_score(LAT_A, LAT_B, LN105) == gmean_score(LAT_A, LAT_B, LN105)


def test_tail_golden_values() -> None:
    one = np.ones(1)
    tail = TailSums(one, m=1000, N=20000, Snn=2.8e6, X=260 * one, Skn=41000 * one, Skk=900 * one)
    s, info = (float(v[0]) for v in tail_scores(tail, 0.01))
    assert (s, info) == pytest.approx((33.3, 111.0), abs=1e-8)
    assert mix1(s, info, 0.4) == pytest.approx(3.9549737133, abs=1e-8)
    assert mix1(-s, info, 0.4) == pytest.approx(-2.9015626462, abs=1e-8)


def test_srm_on_units_golden_values() -> None:
    assert srm_units_log_bf({0.1: (9000, 1000)}) == pytest.approx(-1.1997136269, abs=1e-8)
    assert srm_units_log_bf({0.1: (8800, 1200)}) == pytest.approx(17.9312075246, abs=1e-8)
    both = srm_units_log_bf({0.1: (9000, 1000), 0.5: (520, 480)})
    assert both == pytest.approx(-1.1997136269 + srm_units_log_bf({0.5: (520, 480)}), abs=1e-8)
    assert srm_units_log_bf({}) == 0.0


@pytest.mark.parametrize("cuts", [[], list(range(1, 16)), [5, 11]])
def test_worked_stream_log_e_values(cuts: list[int]) -> None:
    t = _feed(UnitTally(), cuts, rho=0.3)
    assert error_log_e(t, 1.0, "greater", 0.5) == pytest.approx(-0.0225817300, abs=1e-8)
    assert error_log_e(t, 1.2, "less", LN12) == pytest.approx(-0.0348664043, abs=1e-8)
    assert gmean_log_e(t, 1.05, "greater", 0.1) == pytest.approx(0.2884887551, abs=1e-8)
    assert gmean_log_e(t, 1.05, "less", LN105) == pytest.approx(-0.2001561547, abs=1e-8)


def _exact_zero(a: ArmSums, b: ArmSums) -> None:
    for c in (0.5, 1.0, 1.2):
        s, info = error_score(a, b, c)
        assert mix1(s, info, 0.5) == 0.0
        assert mix1(-s, info, LN12) == 0.0
        s, info = gmean_score(a, b, math.log(c))
        assert mix1(s, info, 0.1) == 0.0
        assert mix1(-s, info, LN105) == 0.0


def test_exactly_zero_cases() -> None:
    _exact_zero(ArmSums(), ArmSums())
    _exact_zero(ERR_A, ArmSums())
    _exact_zero(ERR_A, ArmSums(m=1, N=50, Snn=2500, E=3, Sen=150, See=9, Y=4, Syn=200, Syy=16))
    no_errors = ArmSums(m=1000, N=20000, Snn=2.8e6)
    for c in (1.0, 1.2):
        s, info = error_score(no_errors, no_errors, c)
        assert mix1(s, info, 0.5) == 0.0
        assert mix1(-s, info, LN12) == 0.0


def test_an_empty_tally_gives_no_evidence() -> None:
    t = UnitTally()
    assert error_log_e(t, 1.0, "greater", 0.5) == 0.0
    assert error_log_e(t, 1.2, "less", LN12, ERROR_FLOOR) == 0.0
    assert gmean_log_e(t, 1.05, "greater", 0.1) == 0.0
    assert reward_log_e(t, 0.0, "less", 0.1) == 0.0
    assert srm_log_e(t) == 0.0
    assert not p99_harm(t, 1.1, 0.05)
    assert not p99_pass(t, 1.1, 0.05)
    assert math.isnan(error_ratio(t))
    assert math.isnan(gmean_ratio(t))
    assert math.isnan(reward_diff(t))
    assert math.isnan(p99_ratio(t))


def test_floor_zero_is_the_plain_form_and_a_floor_makes_the_null_harder_to_hold() -> None:
    base = error_score(ERR_A, ERR_B, 1.2)
    assert error_score(ERR_A, ERR_B, 1.2, 0.0) == base
    s, info = error_score(ERR_A, ERR_B, 1.2, 0.001)
    assert mix1(-s, info, LN12) > mix1(-base[0], base[1], LN12)


def _zero_error_tally(units: int, seed: int = 3) -> UnitTally:
    s = sticky_stream(np.random.default_rng(seed), units=units, error_beta=(1.0, 1.0))
    t = UnitTally(quantile=None)
    t.add(s.unit, s.in_b, s.rho, np.zeros(s.size, dtype=np.bool_), s.latency_ms)
    return t


def test_zero_error_pair_passes_with_the_floor_and_never_without() -> None:
    small, big = _zero_error_tally(2000), _zero_error_tally(40000)
    for t in (small, big):
        assert error_log_e(t, 1.2, "less", TAU_ERROR_PASS, 0.0) == 0.0
        assert error_log_e(t, 1.0, "greater", TAU_ERROR_HARM) == 0.0
    assert error_log_e(small, 1.2, "less", TAU_ERROR_PASS, ERROR_FLOOR) < math.log(20)
    assert error_log_e(big, 1.2, "less", TAU_ERROR_PASS, ERROR_FLOOR) >= math.log(20)


@pytest.fixture(scope="module")
def constant_split() -> UnitTally:
    return tally_of(sticky_stream(np.random.default_rng(7), units=4000, error_ratio=1.3), batch=700)


def test_canary_step_forms_reduce_to_the_constant_split_forms(constant_split: UnitTally) -> None:
    t = constant_split
    assert not t.steps
    a, b = t.arms
    for c in (0.7, 1.0, 1.2, 1.5):
        for floor in (0.0, 0.001, 0.01):
            assert error_score_steps(t.step_sums, c, floor) == pytest.approx(
                error_score(a, b, c, floor), rel=1e-9
            )
        assert gmean_score_steps(t.step_sums, math.log(c)) == pytest.approx(
            gmean_score(a, b, math.log(c)), rel=1e-9
        )
    ra, rb = t.reward_arms
    for delta in (-0.2, 0.0, 0.3):
        steps = tuple(float(v) for v in mean_diff_scores_steps(t.reward_step_sums, delta))
        assert steps == pytest.approx(mean_diff_score(ra, rb, delta), rel=1e-9)


def test_canary_steps_use_the_horvitz_thompson_form() -> None:
    s = sticky_stream(np.random.default_rng(8), units=10000, pi=(0.1, 0.3, 0.5), drift=2.0)
    t = tally_of(s, batch=1000)
    assert t.steps
    assert t.reward_steps
    s_, info = error_score_steps(t.step_sums, 1.0)
    assert error_log_e(t, 1.0, "greater", 0.5) == mix1(s_, info, 0.5)
    s_, info = gmean_score_steps(t.step_sums, 0.0)
    assert gmean_log_e(t, 1.0, "less", 0.1) == mix1(-s_, info, 0.1)
    # Pooled arm means are confounded by the drift here (B records come late, when errors are high).
    assert mix1(*error_score(*t.arms, 1.0), 0.5) > math.log(20) > error_log_e(t, 1.0, "greater", 0.5)


def test_point_estimates(constant_split: UnitTally) -> None:
    t = constant_split
    a, b = t.arms
    assert error_ratio(t) == pytest.approx((b.E / b.N) / (a.E / a.N), rel=1e-12)
    assert gmean_ratio(t) == pytest.approx(math.exp(b.Y / b.N - a.Y / a.N), rel=1e-12)
    ra, rb = t.reward_arms
    assert reward_diff(t) == pytest.approx(rb.Y / rb.N - ra.Y / ra.N, rel=1e-12)


def test_p99_point_estimate_interpolates_the_arms_quantile() -> None:
    s = sticky_stream(np.random.default_rng(12), units=20000, latency_ratio=1.2)
    t = tally_of(s)
    q_a, q_b = (float(np.quantile(s.latency_ms[s.in_b == b], 0.99)) for b in (False, True))
    assert p99_quantile(t, 0) == pytest.approx(q_a, rel=0.01)
    assert p99_quantile(t, 1) == pytest.approx(q_b, rel=0.02)
    assert p99_ratio(t) == pytest.approx(q_b / q_a, rel=0.03)


def test_srm_on_units_counts_units_not_requests(constant_split: UnitTally) -> None:
    t = constant_split
    ((pi, (m_a, m_b)),) = t.srm_counts.items()
    assert pi == 0.1
    assert (m_a, m_b) == (t.units(0), t.units(1))
    assert srm_log_e(t) == srm_units_log_bf({0.1: (m_a, m_b)})


def test_p99_detects_a_slow_tail() -> None:
    s = sticky_stream(np.random.default_rng(9), units=6000, pi=0.5, latency_ratio=1.6)
    t = tally_of(s)
    assert p99_harm(t, 1.1, 0.05 / 3)
    assert not p99_pass(t, 1.1, 0.05)
    assert p99_lower(t, 1, 0.05 / 6) > 1.1 * p99_upper(t, 0, 0.05 / 6)


def test_p99_sides_outside_the_thresholds_stay_unknown() -> None:
    t = UnitTally()
    ones = np.ones(1000, dtype=np.bool_)
    t.add(np.arange(1000), ones, np.full(1000, 0.5), ~ones, np.full(1000, 100.0))  # x_ref = 100
    assert t.x_ref == 100.0
    units = np.arange(1000, 9000)
    on_b = units % 2 == 1
    for _ in range(3):
        t.add(units, on_b, np.full(units.size, 0.5), np.zeros(units.size, bool), np.where(on_b, 1000.0, 10.0))
    x0, x50 = 100.0 * math.exp(-0.4), 100.0 * math.exp(0.6)
    assert p99_lower(t, 0, 0.05) == 0.0
    assert p99_upper(t, 0, 0.05) == pytest.approx(x0)
    assert p99_lower(t, 1, 0.05) == pytest.approx(x50)
    assert p99_upper(t, 1, 0.05) == math.inf
    assert math.isnan(p99_quantile(t, 0))
    assert math.isnan(p99_quantile(t, 1))
    assert p99_harm(t, 1.1, 0.05)


def test_p99_pass_needs_5000_candidate_records() -> None:
    s = sticky_stream(np.random.default_rng(11), units=30000, pi=0.5, latency_ratio=0.8)
    t, held_early = UnitTally(), False
    for lo in range(0, s.size, 200):
        t.add(*s.rows(lo, lo + 200))
        bounds_say_pass = p99_upper(t, 1, 0.025) <= 1.1 * p99_lower(t, 0, 0.025)
        if t.records(1) < 5000:
            held_early |= bounds_say_pass
            assert not p99_pass(t, 1.1, 0.05)
        elif bounds_say_pass:
            break
    assert held_early
    assert p99_pass(t, 1.1, 0.05)
