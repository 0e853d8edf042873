"""The engine's gates: per-unit analysis, SRM never trapping a rollback, error floors, three arms, records
routed with certainty, early harm tests, decision bounds, blue-green SLOs, feedback maturity."""

from __future__ import annotations

import numpy as np

from analysis.columns import from_records, make_columns
from analysis.comparisons import Comparisons, judge_for
from analysis.engine import Judge
from analysis.verdict import Looker
from experiments.model import (
    ABStrategy,
    AnalysisSpec,
    BlueGreenStrategy,
    CanaryStrategy,
    Experiment,
    MetricRule,
    Slo,
    UnitKey,
    Variant,
)
from experiments.outcome import OutcomeRecord

ERRORS = (MetricRule("error_rate", margin=1.2),)
V = (Variant("v1", "stable", "http://a"), Variant("v2", "candidate", "http://b"))


STICKY = UnitKey("header", "x-user-id")
CANARY = CanaryStrategy((10.0, 100.0))


def exp(
    unit: UnitKey = STICKY,
    analysis: AnalysisSpec | None = None,
    strategy: CanaryStrategy | ABStrategy | BlueGreenStrategy = CANARY,
    variants: tuple[Variant, ...] = V,
) -> Experiment:
    return Experiment(
        name="exp",
        source="exp.yaml",
        path_prefix="/",
        variants=variants,
        unit=unit,
        salt="s",
        strategy=strategy,
        analysis=analysis or AnalysisSpec(guardrails=ERRORS),
    )


Traffic = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def sticky(seed: int, users: int, share: float, err_b: float, skew: float = 0.0) -> Traffic:
    """Sticky traffic: each user has 1–20 requests, one arm, a per-user error propensity."""
    rng = np.random.default_rng(seed)
    bucket = rng.random(users)
    on_b = bucket < share + skew
    n = rng.integers(1, 20, users)
    prop = rng.beta(0.5, 49.5, users) * np.where(on_b, err_b, 1.0)
    unit = np.repeat(np.arange(users), n)
    in_b = on_b[unit]
    err = rng.random(unit.size) < prop[unit]
    order = rng.permutation(unit.size)
    lat = np.exp(rng.normal(np.log(50), 0.4, unit.size))
    return unit[order], in_b[order], err[order], lat[order]


def feed_sticky(judge: Judge, traffic: Traffic, share: float) -> None:
    unit, in_b, err, lat = traffic
    for start in range(0, unit.size, 1000):
        s = slice(start, start + 1000)
        judge.observe_columns(
            make_columns(in_b[s], np.full(in_b[s].size, share), err[s], lat[s], unit=unit[s])
        )


def test_sticky_units_are_the_observation_and_the_snapshot_says_so() -> None:
    judge = Judge(exp())
    feed_sticky(judge, sticky(1, 3000, 0.1, 1.0), share=0.1)
    d = judge.decide(step=0, candidate_in_step=0)
    assert d.snapshot["unit_of_analysis"] == "unit"
    units = d.snapshot["units"]
    assert 200 < units["candidate"] < 400
    assert units["stable"] > 2500
    assert d.snapshot["effective_units"]["candidate"] < units["candidate"]
    assert d.kind != "ROLLBACK"


def test_srm_holds_promotion_but_never_blocks_a_rollback() -> None:
    # Units skewed towards the candidate (SRM fires) while the candidate doubles errors: still rolled back.
    judge = Judge(exp())
    feed_sticky(judge, sticky(2, 6000, 0.1, 1.0, skew=0.04), share=0.1)
    first = judge.decide(step=0, candidate_in_step=0)
    assert first.snapshot["srm"]["flagged"]
    assert first.kind in ("HOLD", "WARMUP")
    feed_sticky(judge, sticky(3, 20000, 0.1, 3.0, skew=0.04), share=0.1)
    d = judge.decide(step=0, candidate_in_step=0)
    assert d.kind == "ROLLBACK", d.reasons
    assert judge.latched() == ["v2"]


def test_zero_errors_pass_with_the_floor_and_never_without() -> None:
    floor = Judge(exp(UnitKey("request"), AnalysisSpec(guardrails=(MetricRule("error_rate", margin=1.2),))))
    none = Judge(
        exp(UnitKey("request"), AnalysisSpec(guardrails=(MetricRule("error_rate", 1.2, error_floor=0.0),)))
    )
    n = 60_000
    cols = make_columns(np.arange(n) % 2 == 0, np.full(n, 0.5), np.zeros(n, bool), np.full(n, 10.0))
    for judge in (floor, none):
        judge.observe_columns(cols)
    assert floor.decide(step=0, candidate_in_step=n).kind == "PROMOTE"
    kept = none.decide(step=0, candidate_in_step=n)
    assert kept.kind == "CONTINUE"
    assert "non-inferiority" in kept.reasons[0]


def test_three_arms_use_the_pair_share_and_split_alpha() -> None:
    three = (*V, Variant("v3", "candidate", "http://c"))
    e = exp(UnitKey("request"), strategy=ABStrategy({"v1": 50.0, "v2": 25.0, "v3": 25.0}), variants=three)
    judge = judge_for(e)
    assert isinstance(judge, Comparisons)
    assert [j.policy.comparison_alpha for j in judge.judges] == [0.025, 0.025]
    recs = [
        OutcomeRecord(f"r{i}", float(i), "exp", v, p, 200, None, 10.0, 1.0, None)
        for i, (v, p) in enumerate([("v1", 0.5), ("v2", 0.25), ("v3", 0.25)] * 10)
    ]
    cols = from_records(recs, "v1", "v2", pair_share=judge.judges[0].policy.pair_share)
    assert cols.size == 20
    assert np.allclose(cols.rho, 1 / 3)


def test_records_routed_with_certainty_are_left_out_of_every_test() -> None:
    recs = [OutcomeRecord(f"s{i}", float(i), "exp", "v1", 1.0, 200, None, 5.0, 1.0, None) for i in range(50)]
    recs += [
        OutcomeRecord(f"p{i}", 50.0 + i, "exp", "v2", 1.0, 200, None, 5.0, 1.0, None, pinned=True)
        for i in range(5)
    ]
    recs += [
        OutcomeRecord(f"c{i}", 60.0 + i, "exp", "v2" if i % 2 else "v1", 0.5, 200, None, 9.0, 1.0, None)
        for i in range(10)
    ]
    cols = from_records(recs, "v1", "v2")
    assert cols.size == 10
    assert set(cols.latency_ms) == {9.0}


def test_the_exact_error_test_rolls_back_before_the_warmup() -> None:
    judge = Judge(exp(UnitKey("request")))
    n = 600
    in_b = np.arange(n) % 2 == 0
    judge.observe_columns(make_columns(in_b, np.full(n, 0.5), in_b & (np.arange(n) % 4 == 0), np.ones(n)))
    d = judge.decide(step=0, candidate_in_step=0)
    assert judge.tally.n_candidate < 500
    assert d.kind == "ROLLBACK"


def test_reported_bounds_are_the_decisions() -> None:
    judge = Judge(
        exp(UnitKey("request"), AnalysisSpec(guardrails=(MetricRule("latency_gmean", margin=1.05),)))
    )
    rng = np.random.default_rng(4)
    n = 8000
    in_b = rng.random(n) < 0.5
    lat = np.exp(rng.normal(np.log(50), 0.4, n)) * np.where(in_b, 1.08, 1.0)
    judge.observe_columns(make_columns(in_b, np.full(n, 0.5), np.zeros(n, bool), lat))
    d = judge.decide(step=0, candidate_in_step=0)
    m = d.snapshot["metrics"][0]
    assert m["harm_margin"] == 1.05
    assert m["interval"].startswith("decision bounds")
    assert (m["ci_low"] > 1.05) == m["harm"]
    assert m["ci_low"] < m["estimate"] < m["ci_high"]


def test_blue_green_is_guarded_by_its_slo() -> None:
    green = exp(
        UnitKey("request"),
        AnalysisSpec(guardrails=ERRORS, slo=Slo(error_rate=0.01, p99_ms=250.0)),
        BlueGreenStrategy("v2"),
    )
    ok, bad = Judge(green), Judge(green)
    fine = [
        OutcomeRecord(f"r{i}", float(i), "exp", "v2", 1.0, 200, None, 20.0, 1.0, None) for i in range(3000)
    ]
    broken = [
        OutcomeRecord(f"r{i}", float(i), "exp", "v2", 1.0, 500 if i % 20 == 0 else 200, None, 20.0, 1.0, None)
        for i in range(3000)
    ]
    ok.observe(fine)
    bad.observe(broken)
    assert ok.decide(step=0, candidate_in_step=0).kind == "WARMUP"
    d = bad.decide(step=0, candidate_in_step=0)
    assert d.kind == "ROLLBACK"
    assert "slo errorRate" in d.reasons[0]
    assert "no concurrent comparison" in d.snapshot["notes"][0]


def test_rewards_count_only_once_their_window_closed() -> None:
    goal = MetricRule("reward_mean", direction="increase", min_effect=0.0)
    e = exp(UnitKey("request"), AnalysisSpec(guardrails=ERRORS, goals=(goal,), feedback_window_s=50.0))
    looker = Looker(Judge(e), e)
    recs = [
        OutcomeRecord(
            f"r{i}", float(i), "exp", "v2" if i % 2 else "v1", 0.5, 200, None, 5.0, 1.0, None, reward=1.0
        )
        for i in range(300)
    ]
    looker.rewards_inline = True
    looker.feed(recs[:100], {})
    judge = looker.judge
    assert isinstance(judge, Judge)
    # At ts 99 the window (50 s, plus 1 s of grace) has closed for the requests at ts ≤ 48 only.
    assert judge.tally.reward.n == 49
    looker.feed(recs[100:200], {})
    assert judge.tally.reward.n == 149


def test_a_persisted_srm_latch_is_restored_at_start() -> None:
    from dataclasses import replace

    from experiments.state import initial_state

    e = exp()
    state = replace(initial_state(e), extra={"srm_latched": ["v2"]})
    judge = Judge(e)
    Looker(judge, e, state)
    assert judge.srm_latched
    assert judge.latched() == ["v2"]
