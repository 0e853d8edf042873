"""The whole engine under continuous looks: A/A with a drifting canary ramp, and candidates at the margins."""

from __future__ import annotations

from collections import Counter

import pytest

from analysis.metrics_eval import Tuning
from analysis.policy import DEFAULT_GUARDRAILS, Policy
from analysis.simulate import Scenario, run_engine
from tests.analysis.calib import bound

ALPHA = 0.05
RAMP = (0.05, 0.10, 0.25, 0.50)


def ramp_policy(max_requests: int) -> Policy:
    return Policy(
        guardrails=DEFAULT_GUARDRAILS,
        max_requests=max_requests,
        steps=tuple(100 * s for s in RAMP),
        tuning=Tuning(0.05, 2000.0, float(max_requests)),
    )


def test_a_a_with_a_drifting_ramp_rarely_rolls_back() -> None:
    """A/A, split 5→10→25→50% on a schedule, diurnal drift and a shared 5× error incident: false
    ROLLBACK or HOLD (SRM) in ≤ α + 3·SE of runs, looking after every 1k–10k requests."""
    runs = 150
    sc = Scenario(drift=True, max_total=120_000)
    policy = ramp_policy(40_000)
    kinds = Counter(
        run_engine(policy, sc, seed, RAMP, ramp_at=(10_000, 25_000, 45_000)).kind for seed in range(runs)
    )
    false = (kinds["ROLLBACK"] + kinds["HOLD"]) / runs
    assert false <= bound(ALPHA, runs), kinds


@pytest.mark.slow
@pytest.mark.parametrize(
    "scenario",
    [Scenario(error_mult=1.2, max_total=600_000), Scenario(latency_mult=1.05, max_total=600_000)],
    ids=["at-error-margin", "at-latency-margin"],
)
def test_candidate_exactly_at_a_margin_is_rarely_promoted(scenario: Scenario) -> None:
    runs = 200
    policy = Policy(max_requests=40_000, steps=(10.0,), tuning=Tuning(0.1, 2000.0, 40_000.0))
    kinds = Counter(run_engine(policy, scenario, 1000 + seed).kind for seed in range(runs))
    assert kinds["PROMOTE"] / runs <= bound(ALPHA, runs), kinds
