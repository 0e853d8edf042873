"""Token metrics (ttft_gmean, ttft_p99, itl_gmean, tokens_per_s): the latency tests on the records' token
measures, per request and per unit; records without a measure are left out and block promotion alone."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from analysis.columns import from_records, make_columns
from analysis.engine import Judge
from experiments.model import ABStrategy, AnalysisSpec, Experiment, MetricRule, UnitKey, Variant
from experiments.outcome import OutcomeRecord
from tests.analysis.calib import bound

GUARDS = (
    MetricRule("error_rate", margin=1.2),
    MetricRule("latency_gmean", margin=1.1),
    MetricRule("ttft_gmean", margin=1.1),
)


def experiment(guards: tuple[MetricRule, ...] = GUARDS, sticky: bool = False) -> Experiment:
    return Experiment(
        name="llm",
        source="llm.yaml",
        path_prefix="/v1",
        variants=(Variant("v1", "stable", "http://a"), Variant("v2", "candidate", "http://b")),
        unit=UnitKey("header", "x-user-id") if sticky else UnitKey("request"),
        salt="s",
        strategy=ABStrategy({"v1": 50.0, "v2": 50.0}),
        analysis=AnalysisSpec(guardrails=guards),
    )


def records(
    seed: int,
    n: int,
    ttft_b: float = 1.0,
    rate_b: float = 1.0,
    streamed: float = 1.0,
    users: int | None = None,
) -> list[OutcomeRecord]:
    """Streams of 20 tokens: ttft ~ 50 ms, the rest of the answer ~ 150 ms; the candidate's first token comes
    `ttft_b` times later and its other tokens `rate_b` times faster, its total latency unchanged when
    ttft_b·50 + 150/rate_b = 200. A share 1 − `streamed` of the answers are whole JSON (no ttft, no itl)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        on_b = bool(rng.random() < 0.5)
        noise = float(np.exp(rng.normal(0.0, 0.3)))
        ttft = 50.0 * noise * (ttft_b if on_b else 1.0)
        rest = 150.0 * noise / (rate_b if on_b else 1.0)
        stream = bool(rng.random() < streamed)
        out.append(
            OutcomeRecord(
                request_id=f"r{i}",
                ts=float(i),
                experiment="llm",
                variant="v2" if on_b else "v1",
                p_variant=0.5,
                status=200,
                error=None,
                latency_ms=ttft + rest,
                upstream_ms=1.0,
                unit=None if users is None else f"u{int(rng.integers(users))}",
                ttft_ms=ttft if stream else None,
                itl_ms=rest / 19 if stream else None,
                output_tokens=20,
                finish_reason="length",
            )
        )
    return out


def judged(exp: Experiment, recs: list[OutcomeRecord], block: int = 500) -> list[str]:
    """Feed in blocks, decide after each; the decision kinds until the first final one."""
    judge = Judge(exp)
    kinds: list[str] = []
    for start in range(0, len(recs), block):
        judge.observe(recs[start : start + block])
        d = judge.decide(step=0, candidate_in_step=0)
        kinds.append(d.kind)
        json.dumps(d.snapshot, allow_nan=False)
        if d.kind in ("ROLLBACK", "PROMOTE"):
            kinds.extend(d.reasons)
            break
    return kinds


@pytest.mark.parametrize("sticky", [False, True])
def test_a_late_first_token_rolls_back_while_total_latency_holds(sticky: bool) -> None:
    # ttft ×1.4, the other tokens faster: 70 + 150/1.15 ≈ 200 ms, the same total as stable's 50 + 150.
    recs = records(1, 6000, ttft_b=1.4, rate_b=150 / 130, users=2000 if sticky else None)
    out = judged(experiment(sticky=sticky), recs)
    assert "ROLLBACK" in out, out
    reasons = out[out.index("ROLLBACK") + 1 :]
    assert [r.split(":")[0] for r in reasons] == ["ttft_gmean"], reasons


def test_the_token_estimates_are_the_measures_ratios() -> None:
    exp = experiment((*GUARDS, MetricRule("itl_gmean", margin=1.1), MetricRule("tokens_per_s", margin=1.1)))
    judge = Judge(exp)
    judge.observe(records(2, 4000, ttft_b=1.4, rate_b=0.8))
    metrics = {m["name"]: m for m in judge.snapshot()["metrics"]}
    assert metrics["ttft_gmean"]["estimate"] == pytest.approx(1.4, rel=0.05)
    assert metrics["itl_gmean"]["estimate"] == pytest.approx(1.25, rel=0.05)
    # tokens_per_s is judged as time per token: stable's rate over the candidate's, above 1 = slower
    assert metrics["tokens_per_s"]["estimate"] == pytest.approx((70 + 150 / 0.8) / 200, rel=0.05)
    assert metrics["ttft_gmean"]["ci_low"] < 1.4 < metrics["ttft_gmean"]["ci_high"]


def test_slow_tokens_roll_back_on_tokens_per_s_and_a_late_tail_on_ttft_p99() -> None:
    exp = experiment((MetricRule("tokens_per_s", margin=1.1),))
    out = judged(exp, records(3, 6000, rate_b=0.6))
    assert "ROLLBACK" in out, out
    assert out[-1].startswith("tokens_per_s: harm"), out
    exp = experiment((MetricRule("ttft_p99", margin=1.1),))
    out = judged(exp, records(4, 20_000, ttft_b=2.0), block=2000)
    assert "ROLLBACK" in out, out
    assert out[-1].startswith("ttft_p99: harm"), out


def test_records_without_the_measure_are_left_out_and_none_cannot_pass() -> None:
    exp = experiment(GUARDS[1:])
    none_streamed = Judge(exp)
    none_streamed.observe(records(5, 3000, streamed=0.0))
    d = none_streamed.decide(step=0, candidate_in_step=0)
    assert d.kind == "CONTINUE"
    (why,) = [r for r in d.reasons if r.startswith("ttft_gmean")]
    assert "0 stable and 0 candidate records carry ttft_ms; no promotion before 500 per arm" in why
    half = Judge(exp)
    recs = records(5, 6000, streamed=0.5)
    half.observe(recs)
    assert half.decide(step=0, candidate_in_step=0).kind == "PROMOTE"
    ttft = {m["name"]: m for m in half.snapshot()["metrics"]}["ttft_gmean"]
    assert ttft["passed"]
    assert not ttft["harm"]


def test_errors_carry_no_token_measure() -> None:
    rec = records(6, 2)
    broken = [dataclasses.replace(rec[0], status=200, error="upstream_reset"), rec[1]]
    cols = from_records(broken, "v1", "v2", measures=("ttft_ms", "ms_per_token"))
    assert np.isnan(cols.extra["ttft_ms"][0])
    assert np.isnan(cols.extra["ms_per_token"][0])
    assert cols.extra["ms_per_token"][1] == pytest.approx(rec[1].latency_ms / 20)


def test_a_a_false_rollbacks_stay_below_alpha_with_missing_measures() -> None:
    """200 A/A runs of 4,000 requests, 30% without ttft/itl (arm-independent), looks every 250: the false
    rollback rate over the three token guardrails is within α + 3·SE (the latency tests' own guarantee)."""
    exp = experiment(
        (MetricRule("ttft_gmean", margin=1.1), MetricRule("itl_gmean", 1.1), MetricRule("ttft_p99", 1.1))
    )
    runs, rollbacks = 200, 0
    for seed in range(runs):
        rng = np.random.default_rng(seed)
        n = 4000
        in_b = rng.random(n) < 0.5
        lat = np.exp(rng.normal(np.log(200), 0.3, n))
        ttft = np.where(rng.random(n) < 0.7, np.exp(rng.normal(np.log(50), 0.5, n)), np.nan)
        itl = np.where(np.isnan(ttft), np.nan, np.exp(rng.normal(np.log(8), 0.4, n)))
        judge = Judge(exp)
        for s in range(0, n, 250):
            cols = make_columns(in_b[s : s + 250], np.full(250, 0.5), np.zeros(250, bool), lat[s : s + 250])
            extra = {"ttft_ms": ttft[s : s + 250], "itl_ms": itl[s : s + 250]}
            judge.observe_columns(dataclasses.replace(cols, extra=extra))
            if judge.decide(step=0, candidate_in_step=0, detail=False).kind == "ROLLBACK":
                rollbacks += 1
                break
    assert rollbacks / runs <= bound(0.05, runs)
