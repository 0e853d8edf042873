"""The unit-level tests (sticky assignment: the unit of assignment is the observation) of one comparison.

Usage: `ev = UnitEvidence(unit_tally, policy)`; `ev.log_e(rule, c, "greater", alpha, "harm")`

With `unit: header:…` or `claim:…` every request of a user goes to one arm, so requests are not independent
and the per-request tests would overstate the evidence (an A/A with sticky users rolled back 18.5% of the
time). Here every metric is a ratio (or difference) of request-weighted arm means whose variance is
estimated from the units' residual totals (a cluster sandwich), tested with the one-sided normal mixture
`mix1` of the current score and information; while the split changes (canary steps) the Horvitz–Thompson
form clustered by unit is used instead. Tests act from 100 units per arm (their validity is asymptotic in
units).

- error_rate: r = p_B/p_A, harm at harmMargin (τ 0.5), pass at margin with the absolute floor (τ ln 1.2).
- latency_gmean: ratio of geometric means, harm at harmMargin (τ 0.1), pass at margin (τ ln 1.05).
- latency_p99: per-arm threshold tests around a frozen reference (τ 0.4): harm when
  lower_B(α/(2K)) > harmMargin·upper_A(α/(2K)); pass when upper_B(α/2) ≤ margin·lower_A(α/2) and n_B ≥ 5000.
- reward_mean: the difference of the arms' mean rewards (raw rewards, τ a tenth of the declared range).
"""

from __future__ import annotations

import math
from typing import Literal

from analysis import unit_estimands as est
from analysis.bounds import RATIO, Scale, difference
from analysis.engine_types import Exposure
from analysis.metrics_eval import P99_MIN_CANDIDATE, Side
from analysis.policy import Policy, error_floor
from analysis.unit_tally import UnitTally
from experiments.model import MetricRule

TAU = {
    ("error_rate", "greater"): est.TAU_ERROR_HARM,
    ("error_rate", "less"): est.TAU_ERROR_PASS,
    ("latency_gmean", "greater"): est.TAU_LATENCY_HARM,
    ("latency_gmean", "less"): est.TAU_LATENCY_PASS,
}
UNIT_METRICS = frozenset({"error_rate", "latency_gmean", "latency_p99", "reward_mean"})
"""What the unit-level analysis judges (validation refuses other metrics with a sticky unit)."""


def new_unit_tally(policy: Policy) -> UnitTally:
    """An empty tally for `policy` (p99 state only when a rule reads it)."""
    quantile = 0.99 if "latency_p99" in policy.metrics else None
    return UnitTally(policy.unit_cap, quantile)


class UnitEvidence:
    """The unit-level tests of one comparison, read from its `UnitTally`."""

    unit: Literal["request", "unit"] = "unit"

    def __init__(self, tally: UnitTally, policy: Policy) -> None:
        self.t, self.policy = tally, policy
        self.n_stable, self.n_candidate = tally.records(0), tally.records(1)
        self._floors = {r.metric: error_floor(r) for r in policy.guardrails}
        self._ranges = {r.metric: r.range for r in policy.goals}

    def log_e(self, rule: MetricRule, c: float, side: Side, alpha: float, role: str) -> float:
        """log E of H0 "B ≤ c·A" (`greater`) / "B ≥ c·A" (`less`); c is a difference for reward_mean."""
        m, t = rule.metric, self.t
        if m == "latency_p99":
            # Not an e-value: ln(1/α) when both arms' threshold tests (each at α/2) say so, else 0.
            yes = est.p99_harm(t, c, alpha) if side == "greater" else est.p99_pass(t, c, alpha, min_records=0)
            return math.log(1.0 / alpha) if yes else 0.0
        if m == "reward_mean":
            lo, hi = self._ranges.get(m, (0.0, 1.0))
            return est.reward_log_e(t, c, side, 0.1 * (hi - lo))
        if m == "error_rate":
            floor = self._floors.get(m, 0.0) if side == "less" else 0.0
            return est.error_log_e(t, c, side, TAU[(m, side)], floor)
        return est.gmean_log_e(t, c, side, TAU[(m, side)])

    def estimate(self, rule: MetricRule) -> float:
        """Candidate/stable ratio of request-weighted means (difference for rewards)."""
        return {
            "error_rate": est.error_ratio,
            "latency_gmean": est.gmean_ratio,
            "reward_mean": est.reward_diff,
            "latency_p99": est.p99_ratio,
        }[rule.metric](self.t)

    def harm_wait(self, rule: MetricRule) -> str | None:
        """Unit-level tests act from `min_units` units per arm."""
        least = min(self.t.units(0), self.t.units(1))
        if least < self.policy.min_units:
            return f"unit-level tests act from {self.policy.min_units} units per arm ({least} so far)"
        return None

    def pass_block(self, rule: MetricRule) -> str | None:
        """p99 needs tail data; a unit seen in both arms at one split means the assignment is broken."""
        if self.t.switched:
            return f"{self.t.switched} units changed arm at an unchanged split"
        if rule.metric == "latency_p99" and self.n_candidate < P99_MIN_CANDIDATE:
            return f"p99 needs n_B ≥ {P99_MIN_CANDIDATE} (n_B = {self.n_candidate})"
        return self.harm_wait(rule)

    def scale(self, rule: MetricRule) -> Scale:
        """Ratios on the log scale; reward differences within the declared range's width."""
        if rule.metric == "reward_mean":
            lo, hi = self._ranges.get("reward_mean", (0.0, 1.0))
            return difference(hi - lo)
        return RATIO

    def srm_log_bf(self) -> float:
        """The sample-ratio Bayes factor on units at their first record, per planned split."""
        return est.srm_log_e(self.t)

    def exposure(self, duration_s: float | None) -> Exposure:
        """Records, units, effective units and capped records per arm."""
        t = self.t
        return Exposure(
            t.records(0), t.records(1), "unit", t.units(0), t.units(1),
            t.effective_units(0), t.effective_units(1), t.capped, duration_s,
        )  # fmt: skip
