"""The decision engine through the Judge API: stages, reasons, snapshot, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analysis.columns import from_records, is_error, make_columns
from analysis.engine import Judge
from analysis.policy import DEFAULT_GUARDRAILS
from experiments.model import (
    AnalysisSpec,
    CanaryStrategy,
    Experiment,
    MetricRule,
    OnInconclusive,
    UnitKey,
    Variant,
)
from experiments.outcome import OutcomeRecord

ERRORS_ONLY = (MetricRule("error_rate", margin=1.5),)


def experiment(
    steps: tuple[float, ...] = (10.0, 100.0), analysis: AnalysisSpec | None = None, per_step: int = 0
) -> Experiment:
    return Experiment(
        name="exp",
        source="exp.yaml",
        path_prefix="/",
        variants=(Variant("v1", "stable", "http://a"), Variant("v2", "candidate", "http://b")),
        unit=UnitKey("request"),
        salt="s",
        strategy=CanaryStrategy(steps, per_step),
        analysis=analysis,
    )


def records(
    rng: np.random.Generator, n: int, share: float = 0.1, err_b: float = 0.01, lat_b: float = 1.0
) -> list[OutcomeRecord]:
    out = []
    for i in range(n):
        on_b = bool(rng.random() < share)
        err = bool(rng.random() < (err_b if on_b else 0.01))
        out.append(
            OutcomeRecord(
                request_id=f"r{i}",
                ts=float(i),
                experiment="exp",
                variant="v2" if on_b else "v1",
                p_variant=share if on_b else 1.0 - share,
                status=503 if err else 200,
                error=None,
                latency_ms=float(np.exp(rng.normal(np.log(50), 0.5))) * (lat_b if on_b else 1.0),
                upstream_ms=1.0,
                unit=None,
            )
        )
    return out


def feed(judge: Judge, seed: int, n: int, share: float, err_b: float = 0.01, lat_b: float = 1.0) -> None:
    """Columns straight from a generator (fast), as records would give."""
    rng = np.random.default_rng(seed)
    in_b = rng.random(n) < share
    err = rng.random(n) < np.where(in_b, err_b, 0.01)
    lat = np.exp(rng.normal(np.log(50), 0.5, n)) * np.where(in_b, lat_b, 1.0)
    judge.observe_columns(make_columns(in_b, np.full(n, share), err, lat))


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (200, None, False),
        (404, None, False),
        (500, None, True),
        (503, None, True),
        (0, None, True),
        (200, "x", True),
    ],
)
def test_one_definition_of_an_error(status: int, error: str | None, expected: bool) -> None:
    assert is_error(status, error) is expected


def test_pinned_records_and_other_variants_are_excluded() -> None:
    rng = np.random.default_rng(0)
    recs = records(rng, 50)
    for r in recs[:10]:
        r.pinned = True
    recs[10].variant = "v9"
    cols = from_records(recs, "v1", "v2")
    assert cols.size == 39
    assert np.all(cols.rho == pytest.approx(0.1))


def test_nothing_seen_is_warmup_with_zero_evidence_and_a_json_snapshot() -> None:
    judge = Judge(experiment())
    d = judge.decide(step=0, candidate_in_step=0, drops={"stable": 0, "candidate": 0})
    assert d.kind == "WARMUP"
    assert "minimum exposure" in d.reasons[0]
    json.dumps(d.snapshot, allow_nan=False)
    assert [m["name"] for m in d.snapshot["metrics"]] == [g.metric for g in DEFAULT_GUARDRAILS]
    for m in d.snapshot["metrics"]:
        assert m["log_e_harm"] == 0.0
        assert m["log_e_noninf"] == 0.0
    assert d.snapshot["srm"] == {"log_bf": 0.0, "flagged": False}
    assert judge.snapshot()["n_candidate"] == 0


def test_records_feed_the_same_statistics_as_columns() -> None:
    rng = np.random.default_rng(1)
    recs = records(rng, 3000)
    a, b = Judge(experiment()), Judge(experiment())
    a.observe(recs)
    b.observe_columns(from_records(recs, "v1", "v2"))
    assert a.snapshot() == {**b.snapshot(), "duration_s": recs[-1].ts - recs[0].ts}
    assert a.tally.n_candidate + a.tally.n_stable == 3000


def test_a_bad_candidate_is_rolled_back_with_the_metric_and_threshold_named() -> None:
    judge = Judge(experiment())
    feed(judge, 2, 20_000, 0.1, err_b=0.05)
    d = judge.decide(step=0, candidate_in_step=judge.tally.n_candidate)
    assert d.kind == "ROLLBACK"
    assert d.reasons[0].startswith("error_rate: harm e-value")
    assert "1/(α/K) = 60" in d.reasons[0]
    json.dumps(d.snapshot, allow_nan=False)


def test_a_slow_candidate_is_rolled_back_on_latency() -> None:
    judge = Judge(experiment())
    feed(judge, 3, 20_000, 0.1, lat_b=1.3)
    d = judge.decide(step=0, candidate_in_step=judge.tally.n_candidate)
    assert d.kind == "ROLLBACK"
    assert any(r.startswith("latency_gmean: harm") for r in d.reasons)


def test_a_good_candidate_advances_then_promotes() -> None:
    spec = AnalysisSpec(guardrails=ERRORS_ONLY)
    judge = Judge(experiment((20.0, 50.0, 100.0), spec, per_step=1000))
    feed(judge, 4, 40_000, 0.2, err_b=0.005)
    assert judge.decide(step=0, candidate_in_step=999).kind == "CONTINUE"
    d = judge.decide(step=0, candidate_in_step=judge.tally.n_candidate)
    assert d.kind == "ADVANCE"
    assert d.reasons[0].startswith("error_rate: non-inferiority e-value")
    feed(judge, 5, 20_000, 0.5, err_b=0.005)
    assert judge.decide(step=1, candidate_in_step=10_000).kind == "PROMOTE"


def test_drops_block_promotion() -> None:
    judge = Judge(experiment((20.0, 100.0), AnalysisSpec(guardrails=ERRORS_ONLY)))
    feed(judge, 4, 40_000, 0.2, err_b=0.005)
    assert judge.decide(step=0, candidate_in_step=0, drops={"v2": 0}).kind == "PROMOTE"
    # Drops are counted per variant name and gated by role, whatever the names are.
    d = judge.decide(step=0, candidate_in_step=0, drops={"v1": 0, "v2": 100})
    assert d.kind == "HOLD"
    assert d.snapshot["drops"] == {"stable": 0, "candidate": 100}
    assert "dropped" in d.reasons[0]


def test_goals_must_pass_too() -> None:
    goal = MetricRule("reward_mean", direction="increase", min_effect=0.0)
    judge = Judge(experiment((20.0, 100.0), AnalysisSpec(guardrails=ERRORS_ONLY, goals=(goal,))))
    feed(judge, 4, 40_000, 0.2, err_b=0.005)
    assert judge.decide(step=0, candidate_in_step=0).kind == "CONTINUE"
    rng = np.random.default_rng(6)
    in_b = rng.random(40_000) < 0.2
    reward = (rng.random(40_000) < np.where(in_b, 0.3, 0.2)).astype(float)
    cols = make_columns(in_b, np.full(40_000, 0.2), np.zeros(40_000, bool), np.ones(40_000), reward)
    judge.observe_reward_columns(cols)
    d = judge.decide(step=0, candidate_in_step=0)
    assert d.kind == "PROMOTE"
    assert any(r.startswith("reward_mean: goal e-value") for r in d.reasons)
    reward_row = next(m for m in d.snapshot["metrics"] if m["name"] == "reward_mean")
    assert reward_row["ci_low"] < 0.1 < reward_row["ci_high"]


def test_inconclusive_at_max_requests_with_the_configured_action() -> None:
    actions: tuple[OnInconclusive, ...] = ("rollback", "hold")
    for action in actions:
        spec = AnalysisSpec(max_requests=1000, on_inconclusive=action)
        judge = Judge(experiment(analysis=spec))
        feed(judge, 7, 12_000, 0.1)
        d = judge.decide(step=0, candidate_in_step=0)
        assert d.kind == "INCONCLUSIVE"
        assert d.action == action
        assert d.reasons[0].startswith("maxRequests")


def test_sample_ratio_mismatch_holds_and_stays_latched() -> None:
    judge = Judge(experiment())
    rng = np.random.default_rng(8)
    n = 20_000
    in_b = rng.random(n) < 0.13  # planned 10%
    judge.observe_columns(make_columns(in_b, np.full(n, 0.1), np.zeros(n, bool), np.full(n, 50.0)))
    d = judge.decide(step=0, candidate_in_step=0)
    assert d.kind == "HOLD"
    assert d.snapshot["srm"]["flagged"]
    feed(judge, 9, 200_000, 0.1)
    assert judge.decide(step=0, candidate_in_step=0).kind == "HOLD"


def test_replay_is_deterministic_and_batching_does_not_change_decisions() -> None:
    rng = np.random.default_rng(10)
    recs = records(rng, 12_000, share=0.1, err_b=0.03)

    def run(batch: int) -> list[tuple[str, list[str]]]:
        judge = Judge(experiment())
        out: list[tuple[str, list[str]]] = []
        for look in range(1000, 12_001, 1000):
            for i in range(look - 1000, look, batch):
                judge.observe(recs[i : min(i + batch, look)])
            d = judge.decide(step=0, candidate_in_step=judge.tally.n_candidate)
            out.append((d.kind, d.reasons))
        return out

    first = run(1000)
    assert first == run(1000)
    assert [k for k, _ in first] == [k for k, _ in run(7)]
    assert "ROLLBACK" in [k for k, _ in first]
