"""The per-request tests (each request randomised on its own, `unit: request`): one comparison's evidence.

Usage: `ev = RequestEvidence(tally, tuning)`; `ev.log_e(rule, c, "greater", alpha, "harm")`

- error_rate: event attribution (exact, valid from the first request, under any ramp); with an error floor
  the non-inferiority test is the design-weighted score test of p_B ≥ c·p_A + floor, each request its own
  unit (`analysis.request_floor`), so two arms without errors can pass.
- latency_gmean: ψ on log latency (ratio of geometric means); latency_mean: ψ(c) on latency; both normal
  mixtures, valid after a burn-in of 500 candidate records.
- latency_p50 / p99: quantile CSs of each arm (exact beta-binomial mixtures): "lower(CS_B) > c·upper(CS_A)".
- reward_mean: ψ on rewards, the difference candidate − stable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from analysis import error_rate, means, quantiles
from analysis.bounds import RATIO, Scale, difference
from analysis.metrics_eval import P99_MIN_CANDIDATE, QUANTILES, Side, Tuning
from analysis.request_floor import floor_log_e
from analysis.tally import Tally
from experiments.model import MetricRule

NORMAL_BURN_IN = 500
"""Candidate (and stable) records before a per-request normal mixture may act: its validity is asymptotic."""
NORMAL_METRICS = frozenset({"latency_gmean", "latency_mean", "reward_mean"})

Role = Literal["harm", "pass", "goal"]


class RequestEvidence:
    """The per-request tests of one comparison, read from its `Tally`."""

    unit: Literal["request", "unit"] = "request"

    def __init__(self, tally: Tally, tuning: Tuning, floors: dict[str, float] | None = None) -> None:
        self.tally, self.tuning = tally, tuning
        self.floors = floors or {}
        self.n_stable, self.n_candidate = tally.n_stable, tally.n_candidate

    def _n_tune(self, role: str) -> float:
        return self.tuning.harm_b if role == "harm" else self.tuning.pass_b

    def log_e(self, rule: MetricRule, c: float, side: Side, alpha: float, role: str) -> float:
        """log E of H0 "B ≤ c·A" (`greater`) / "B ≥ c·A" (`less`); c is a difference for reward_mean."""
        t, tu, n_b = self.tally, self.tuning, self._n_tune(role)
        m = rule.metric
        if m == "error_rate":
            floor = self.floors.get(m, 0.0)
            if role == "pass" and floor > 0.0:
                return floor_log_e(t.requests, t.errors, c, floor)
            return error_rate.log_e_ratio(t.errors, c, side)
        if m == "latency_gmean":
            contrast = means.contrast(t.log_latency, 1.0)
            return means.log_e(contrast, float(np.log(c)), tu.total(n_b), alpha, side)
        if m == "latency_mean":
            return means.log_e(means.contrast(t.latency, c), 0.0, tu.total(n_b), alpha, side)
        if m == "reward_mean":
            return means.log_e(means.contrast(t.reward, 1.0), c, tu.total(n_b), alpha, side)
        p = QUANTILES[m]
        return quantiles.ratio_log_e(t.hist_b, t.hist_a, p, c, (n_b, tu.stable(n_b)), alpha, side)

    def estimate(self, rule: MetricRule) -> float:
        """Candidate/stable ratio (candidate − stable for reward_mean)."""
        return ESTIMATES[rule.metric](self.tally)

    def harm_wait(self, rule: MetricRule) -> str | None:
        """The normal mixtures need their burn-in; the error and quantile tests are exact."""
        least = min(self.n_stable, self.n_candidate)
        if rule.metric in NORMAL_METRICS and least < NORMAL_BURN_IN:
            return f"normal mixture burn-in: {least} < {NORMAL_BURN_IN} records per arm"
        return None

    def pass_block(self, rule: MetricRule) -> str | None:
        """p99 needs tail data before it may pass."""
        if rule.metric == "latency_p99" and self.n_candidate < P99_MIN_CANDIDATE:
            return f"p99 needs n_B ≥ {P99_MIN_CANDIDATE} (n_B = {self.n_candidate})"
        return None

    def scale(self, rule: MetricRule) -> Scale:
        """Ratios on the log scale; reward differences within ±1e6."""
        return difference(1e6) if rule.metric == "reward_mean" else RATIO


def _gmean(t: Tally) -> float:
    return float(np.exp(means.contrast(t.log_latency, 1.0).mean))


def _mean_ratio(t: Tally) -> float:
    mu_a, mu_b = means.arm_means(t.latency)
    return mu_b / mu_a if mu_a > 0 else float("nan")


def _quantile_ratio(p: float) -> Callable[[Tally], float]:
    def est(t: Tally) -> float:
        qb, qa = quantiles.quantile_estimate(t.hist_b, p), quantiles.quantile_estimate(t.hist_a, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.float64(qb) / qa)

    return est


ESTIMATES: dict[str, Callable[[Tally], float]] = {
    "error_rate": lambda t: error_rate.ratio_estimate(t.errors),
    "latency_gmean": _gmean,
    "latency_mean": _mean_ratio,
    "reward_mean": lambda t: means.contrast(t.reward, 1.0).mean,
    **{name: _quantile_ratio(p) for name, p in QUANTILES.items()},
}
