"""The sticky-traffic generators (determinism, outrider's assignment, stickiness, shares, design effects) and
the run loop that feeds them to the engine."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analysis.design_effects import design_effects
from analysis.populations import (
    HEAVY,
    MILD,
    PARETO,
    STABLE,
    Batch,
    Population,
    Scenario,
    Traffic,
    assign,
    invert_profile,
    pair_rho,
    profile_integral,
)
from analysis.simulate_units import bench_experiment, run_units, step_shares

SMALL = Population("small", 2_000, "lognormal", 1.5)


def _take(traffic: Traffic, chunks: int, shares: tuple[float, ...], size: int = 1000) -> Batch:
    parts = [traffic.take(size, shares) for _ in range(chunks)]
    return Batch(
        np.concatenate([b.unit for b in parts]),
        np.concatenate([b.time for b in parts]),
        np.concatenate([b.arm for b in parts]),
        np.concatenate([b.error for b in parts]),
        np.concatenate([b.latency_ms for b in parts]),
        shares,
    )


def test_same_seed_same_rows_and_chunking_does_not_change_users_or_order() -> None:
    a = _take(Traffic(SMALL, Scenario(), 7), 5, (0.1,))
    b = _take(Traffic(SMALL, Scenario(), 7), 5, (0.1,))
    for x, y in ((a.unit, b.unit), (a.time, b.time), (a.arm, b.arm), (a.error, b.error)):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.latency_ms, b.latency_ms)
    c = _take(Traffic(SMALL, Scenario(), 8), 5, (0.1,))
    assert not np.array_equal(a.unit, c.unit)
    # Arrival marks and times come from their own generator: the chunk size does not change them.
    d = _take(Traffic(SMALL, Scenario(), 7), 2, (0.1,), size=2500)
    np.testing.assert_array_equal(a.unit, d.unit)
    np.testing.assert_allclose(a.time, d.time, rtol=1e-12)
    # Common random numbers: the scenario changes outcomes, not who arrives when.
    e = _take(Traffic(SMALL, Scenario(error_mult=2.0, latency_mult=1.1), 7), 5, (0.1,))
    np.testing.assert_array_equal(a.unit, e.unit)
    np.testing.assert_array_equal(a.arm, e.arm)


def test_arrivals_are_in_time_order_at_the_planned_rate() -> None:
    b = _take(Traffic(SMALL, Scenario(), 1), 20, (0.1,))
    assert np.all(np.diff(b.time) > 0)
    rate = b.size / b.time[-1]
    assert rate == pytest.approx(SMALL.requests_per_s, rel=0.03)


def test_shared_time_profile_is_inverted_exactly() -> None:
    s = np.linspace(0.0, 5000.0, 2001)
    t = invert_profile(s, 0.5, 500.0)
    np.testing.assert_allclose(profile_integral(t, 0.5, 500.0), s, atol=1e-6)
    swung = Population("swing", 2_000, traffic_swing=0.5, traffic_period_s=100.0)
    b = _take(Traffic(swung, Scenario(), 3), 20, (0.1,))
    phase = np.sin(2 * np.pi * b.time / 100.0)
    # Three times as many arrivals at the crest (g = 1.5) as in the trough (g = 0.5).
    ratio = np.count_nonzero(phase > 0.9) / np.count_nonzero(phase < -0.9)
    assert 2.6 < ratio < 3.4


def test_assignment_matches_outrider_layout_and_three_arm_split() -> None:
    u = np.array([0.0, 0.0999, 0.1, 0.2499, 0.25, 0.4999, 0.5, 0.9999])
    np.testing.assert_array_equal(assign(u, (0.1,)), [1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(assign(u, (0.25, 0.25)), [1, 1, 1, 1, 2, 2, 0, 0])
    np.testing.assert_array_equal(assign(u, (0.0,)), np.zeros(u.size))
    np.testing.assert_array_equal(assign(u, (0.0, 0.25)), [1 + 1] * 4 + [0] * 4)
    with pytest.raises(ValueError, match="exceed"):
        assign(u, (0.6, 0.6))
    assert pair_rho((0.25, 0.25), 1) == pytest.approx(1 / 3)
    assert pair_rho((0.25, 0.25), 2) == pytest.approx(1 / 3)
    assert pair_rho((0.1,), 1) == pytest.approx(0.1)
    assert pair_rho((0.0,), 1) == 0.0


def test_raising_the_step_only_moves_units_from_stable_to_candidate() -> None:
    traffic = Traffic(SMALL, Scenario(), 5)
    bucket = traffic.units.bucket
    steps = [assign(bucket, (s,)) for s in (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)]
    for before, after in itertools.pairwise(steps):
        assert not np.any((before == 1) & (after == STABLE))
        assert np.count_nonzero(after == 1) >= np.count_nonzero(before == 1)
    assert np.all(steps[-1] == 1)


def test_a_sticky_unit_stays_on_one_arm_and_per_request_does_not() -> None:
    sticky = _take(Traffic(SMALL, Scenario(), 2), 30, (0.25, 0.25))
    arms_per_unit = {(int(u), int(a)) for u, a in zip(sticky.unit, sticky.arm, strict=True)}
    assert len(arms_per_unit) == np.unique(sticky.unit).size
    loose = _take(Traffic(SMALL, Scenario(sticky=False), 2), 30, (0.25, 0.25))
    assert (
        len({(int(u), int(a)) for u, a in zip(loose.unit, loose.arm, strict=True)})
        > np.unique(loose.unit).size
    )
    # Per request, the realised request shares are the planned ones.
    shares = np.bincount(loose.arm, minlength=3) / loose.size
    np.testing.assert_allclose(shares, [0.5, 0.25, 0.25], atol=0.015)


def test_realised_unit_shares_follow_the_buckets() -> None:
    traffic = Traffic(MILD, Scenario(), 4)
    arm = assign(traffic.units.bucket, (0.25, 0.25))
    np.testing.assert_allclose(np.bincount(arm, minlength=3) / arm.size, [0.5, 0.25, 0.25], atol=0.006)
    canary = assign(traffic.units.bucket, (0.1,))
    assert np.mean(canary == 1) == pytest.approx(0.1, abs=0.003)


def test_shadowing_latency_and_candidate_effects() -> None:
    sc = Scenario(error_mult=3.0, latency_mult=1.5, shadow_latency=0.75)
    shadow = _take(Traffic(MILD, sc, 6), 20, (0.0,))
    assert np.all(shadow.arm == STABLE)
    live = Traffic(MILD, sc, 6)
    live_rows = _take(live, 1, (0.0,), size=20_000)
    np.testing.assert_array_equal(live_rows.unit, shadow.unit)
    sh = Traffic(MILD, sc, 6).take(20_000, (0.0,), shadow=True)
    np.testing.assert_allclose(sh.latency_ms, 0.75 * live_rows.latency_ms)
    mixed = _take(Traffic(MILD, sc, 9), 100, (0.5,))
    b, a = mixed.arm == 1, mixed.arm == STABLE
    ratio = np.exp(np.mean(np.log(mixed.latency_ms[b])) - np.mean(np.log(mixed.latency_ms[a])))
    assert ratio == pytest.approx(1.5, rel=0.03)
    assert mixed.error[b].mean() / mixed.error[a].mean() == pytest.approx(3.0, rel=0.2)


def test_zero_error_pair_and_the_absolute_floor() -> None:
    none = _take(Traffic(MILD, Scenario(base_error=0.0), 3), 50, (0.5,))
    assert not none.error.any()
    floor = _take(Traffic(MILD, Scenario(base_error=0.0, error_mult=1.2, error_add=0.001), 3), 100, (0.5,))
    assert not floor.error[floor.arm == STABLE].any()
    assert floor.error[floor.arm == 1].mean() == pytest.approx(0.001, rel=0.3)


def test_population_error_rate_and_median_latency() -> None:
    rows = _take(Traffic(MILD, Scenario(), 11), 200, (0.1,))
    assert rows.error.mean() == pytest.approx(MILD.base_error, rel=0.15)
    assert np.median(rows.latency_ms) == pytest.approx(50.0, rel=0.03)


def test_drift_moves_both_arms_together() -> None:
    rows = _take(Traffic(MILD, Scenario(drift=True), 12), 100, (0.5,))
    crest = np.sin(2 * np.pi * rows.time / 500.0) > 0.8
    trough = np.sin(2 * np.pi * rows.time / 500.0) < -0.8
    for arm in (STABLE, 1):
        on = rows.arm == arm
        hi = np.median(rows.latency_ms[on & crest]) / np.median(rows.latency_ms[on & trough])
        assert hi == pytest.approx(1.2 / 0.8, rel=0.06)


@pytest.mark.parametrize(("pop", "errors", "latency"), [(HEAVY, (5.0, 14.0), (30.0, 55.0))])
def test_design_effects_of_the_heavy_population(
    pop: Population, errors: tuple[float, float], latency: tuple[float, float]
) -> None:
    """At 350k requests (35k candidate records at 10%) the heavy population's design effects are ≈ 9 for
    errors and ≈ 40 for log latency (median over seeds; one heavy, error-prone user can double the first)."""
    effects = []
    for seed in range(5):
        rows = _take(Traffic(pop, Scenario(), seed), 35, (0.1,), size=10_000)
        effects.append(design_effects(rows.unit, rows.error, rows.latency_ms, pop.n_users))
    err, lat = np.median(np.array(effects), axis=0)
    assert errors[0] < err < errors[1]
    assert latency[0] < lat < latency[1]


def test_mild_is_barely_clustered_and_pareto_has_no_near_silent_users() -> None:
    mild = _take(Traffic(MILD, Scenario(), 0), 35, (0.1,), size=10_000)
    err, lat = design_effects(mild.unit, mild.error, mild.latency_ms, MILD.n_users)
    assert err < 2.5
    assert lat < 6.0
    heavy = Traffic(HEAVY, Scenario(), 0).units.weight
    pareto = Traffic(PARETO, Scenario(), 0).units.weight
    assert pareto.min() * PARETO.n_users >= 1 / 3 - 1e-9
    assert heavy.min() * HEAVY.n_users < 0.01
    assert 0.002 < pareto.max() < 0.05


def test_the_run_loop_feeds_the_engine_and_counts_records_and_users() -> None:
    tiny = Population("tiny", 5_000, "lognormal", 1.0)
    exp = bench_experiment()
    assert step_shares(exp) == ((0.1,),)
    assert step_shares(bench_experiment(arms={"stable": 50.0, "c1": 25.0, "c2": 25.0})) == ((0.25, 0.25),)
    bad = run_units(exp, tiny, Scenario(error_mult=5.0), seed=1)
    assert bad == run_units(exp, tiny, Scenario(error_mult=5.0), seed=1)
    assert bad.kind == "ROLLBACK"
    assert 0 < bad.candidate < bad.total
    assert 0 < bad.candidate_units < bad.units <= tiny.n_users
    shadowed = run_units(exp, tiny, Scenario(error_mult=5.0, shadow_requests=3000), seed=1, limit=200_000)
    assert shadowed.kind == "ROLLBACK"
    assert shadowed.total < 200_000
