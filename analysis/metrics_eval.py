"""What each metric name means, and one rule (guardrail or goal) classified against the tally.

Usage: `check = check_guardrail(MetricRule("error_rate", margin=1.2), tally, alpha_harm, alpha, tuning)`

Every metric answers two questions about the candidate/stable comparison, on the e-value scale (reject at α
iff log E ≥ log(1/α)): "is B above c times A?" and "is B below c times A?" (`side` greater / less), and
gives an estimate with an anytime CS. Estimates are ratios candidate/stable for `error_rate` and the latency
metrics, and the difference candidate − stable for `reward_mean`.

- error_rate: event attribution (exact). latency_gmean: ψ on log latency (ratio of geometric means).
  latency_mean: ψ(c) on latency (ratio of means, Fieller CS). latency_p50 / p99: quantile CS, a rule
  compares lower(CS_B) with c·upper(CS_A). reward_mean: ψ(c) on rewards.
- Harm (rollback) is "B worse than A by any amount" (c = HARM_TOLERANCE = 1) except for quantiles, where
  STATS.md sets c = margin; non-inferiority is "B better than margin × A" (c = margin).
- A goal "decrease by m" rejects B ≥ (1 − m)·A; "increase by m" rejects B ≤ (1 + m)·A (relative effects).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from analysis import error_rate, means, quantiles, rewards
from analysis.tally import Tally
from experiments.model import MetricRule

Side = Literal["greater", "less"]
HARM_TOLERANCE = 1.0
P99_MIN_CANDIDATE = 5000
"""p99 needs tail data: no promotion on p99 before this many candidate requests."""
QUANTILES = {"latency_p50": 0.5, "latency_p99": 0.99}


@dataclass(frozen=True, slots=True)
class Tuning:
    """Where the mixtures are tightest, in candidate requests; `share` turns them into totals."""

    share: float
    harm_b: float
    pass_b: float

    def total(self, n_b: float) -> float:
        """Total requests (both arms) when the candidate has `n_b`."""
        return n_b / self.share

    def stable(self, n_b: float) -> float:
        """Stable requests when the candidate has `n_b`."""
        return n_b * (1.0 - self.share) / self.share


Test = Callable[[Tally, float, Side, float, float, Tuning], float]
"""(tally, c, side, alpha, candidate requests to tune for, tuning) -> log E."""
Summary = Callable[[Tally, float, Tuning], tuple[float, float, float]]
"""(tally, alpha, tuning) -> (estimate, ci_low, ci_high)."""


def _error_test(t: Tally, c: float, side: Side, alpha: float, n_b: float, tu: Tuning) -> float:
    return error_rate.log_e_ratio(t.errors, c, side)


def _error_summary(t: Tally, alpha: float, tu: Tuning) -> tuple[float, float, float]:
    return (error_rate.ratio_estimate(t.errors), *error_rate.confidence_interval(t.errors, alpha))


def _gmean_test(t: Tally, c: float, side: Side, alpha: float, n_b: float, tu: Tuning) -> float:
    return means.log_e(means.contrast(t.log_latency, 1.0), float(np.log(c)), tu.total(n_b), alpha, side)


def _gmean_summary(t: Tally, alpha: float, tu: Tuning) -> tuple[float, float, float]:
    c = means.contrast(t.log_latency, 1.0)
    half = means.half_width(c, tu.total(tu.pass_b), alpha)
    return float(np.exp(c.mean)), float(np.exp(c.mean - half)), float(np.exp(c.mean + half))


def _psi_test(field: str) -> Test:
    def test(t: Tally, c: float, side: Side, alpha: float, n_b: float, tu: Tuning) -> float:
        sums: means.PsiSums = getattr(t, field)
        return means.log_e(means.contrast(sums, c), 0.0, tu.total(n_b), alpha, side)

    return test


def _mean_ratio_summary(t: Tally, alpha: float, tu: Tuning) -> tuple[float, float, float]:
    mu_a, mu_b = means.arm_means(t.latency)
    est = mu_b / mu_a if mu_a > 0 else float("nan")
    return (est, *means.ratio_interval(t.latency, tu.total(tu.pass_b), alpha))


def _reward_summary(t: Tally, alpha: float, tu: Tuning) -> tuple[float, float, float]:
    return rewards.difference(t.reward, tu.total(tu.pass_b), alpha)


def _quantile_test(p: float) -> Test:
    def test(t: Tally, c: float, side: Side, alpha: float, n_b: float, tu: Tuning) -> float:
        return quantiles.ratio_log_e(t.hist_b, t.hist_a, p, c, (n_b, tu.stable(n_b)), alpha, side)

    return test


def _quantile_summary(p: float) -> Summary:
    def summary(t: Tally, alpha: float, tu: Tuning) -> tuple[float, float, float]:
        qb, qa = quantiles.quantile_estimate(t.hist_b, p), quantiles.quantile_estimate(t.hist_a, p)
        hists, t_opts = (t.hist_b, t.hist_a), (tu.pass_b, tu.stable(tu.pass_b))
        (lo_b, hi_b), (lo_a, hi_a) = quantiles.quantile_cs_arms(hists, p, alpha / 2, t_opts)
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(qb / qa), float(np.float64(lo_b) / hi_a), float(np.float64(hi_b) / lo_a)

    return summary


METRICS: dict[str, tuple[Test, Summary]] = {
    "error_rate": (_error_test, _error_summary),
    "latency_gmean": (_gmean_test, _gmean_summary),
    "latency_mean": (_psi_test("latency"), _mean_ratio_summary),
    "reward_mean": (_psi_test("reward"), _reward_summary),
    **{name: (_quantile_test(p), _quantile_summary(p)) for name, p in QUANTILES.items()},
}


def fmt_e(log_e: float) -> str:
    """An e-value for people: plain up to 10⁶, else as a power of e."""
    return f"{np.exp(log_e):.3g}" if log_e < np.log(1e6) else f"e^{log_e:.1f}"


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One rule classified at one look: estimate, CS, e-values, and what they mean."""

    rule: MetricRule
    role: Literal["guardrail", "goal"]
    estimate: float
    ci_low: float
    ci_high: float
    log_e_harm: float | None
    alpha_harm: float | None
    log_e_pass: float
    alpha_pass: float
    blocked: str | None = None
    """Why the rule may not pass yet whatever its e-value (e.g. p99 before enough tail data)."""
    harm_factor: float = HARM_TOLERANCE
    """The c of the harm test's H0: candidate ≤ c × stable."""

    @property
    def harmful(self) -> bool:
        """The harm test rejected at its level."""
        return self.alpha_harm is not None and _rejects(self.log_e_harm, self.alpha_harm)

    @property
    def passed(self) -> bool:
        """The non-inferiority (guardrail) or goal test rejected, and nothing blocks it."""
        return self.blocked is None and _rejects(self.log_e_pass, self.alpha_pass)

    def harm_reason(self) -> str:
        """Which harm e-value met which threshold (or did not)."""
        e, a = self.log_e_harm or 0.0, self.alpha_harm or 1.0
        op = "≥" if self.harmful else "<"
        h0 = f"H0: candidate ≤ {self.harm_factor:g} × stable"
        return f"{self.rule.metric}: harm e-value {fmt_e(e)} {op} 1/(α/K) = {1 / a:.3g} ({h0}; {self._est()})"

    def pass_reason(self) -> str:
        """Which non-inferiority / goal e-value met which threshold (or did not, or is blocked)."""
        r = self.rule
        if self.role == "guardrail":
            test, h0 = "non-inferiority", f"H0: candidate ≥ {r.margin:g} × stable"
        else:
            test, h0 = "goal", f"goal: {r.direction} by ≥ {r.min_effect or 0:g}"
        op = "≥" if _rejects(self.log_e_pass, self.alpha_pass) else "<"
        tail = f"; {self.blocked}" if self.blocked else ""
        e, inv = fmt_e(self.log_e_pass), 1 / self.alpha_pass
        return f"{r.metric}: {test} e-value {e} {op} 1/α = {inv:.3g} ({h0}; {self._est()}){tail}"

    def _est(self) -> str:
        return f"estimate {self.estimate:.4g}, CI [{self.ci_low:.4g}, {self.ci_high:.4g}]"

    def as_json(self) -> dict[str, Any]:
        """The snapshot entry (non-finite numbers become null)."""
        return {
            "name": self.rule.metric,
            "role": self.role,
            "margin": self.rule.margin,
            "direction": self.rule.direction,
            "min_effect": self.rule.min_effect,
            "estimate": finite(self.estimate),
            "ci_low": finite(self.ci_low),
            "ci_high": finite(self.ci_high),
            "log_e_harm": finite(self.log_e_harm),
            "log_e_noninf": finite(self.log_e_pass),
            "harm": self.harmful,
            "passed": self.passed,
            "blocked": self.blocked,
        }


def finite(x: float | None) -> float | None:
    """`x` if it is a finite number, else None (JSON has no inf or NaN)."""
    return float(x) if x is not None and np.isfinite(x) else None


def _rejects(log_e: float | None, alpha: float) -> bool:
    return log_e is not None and log_e >= float(np.log(1.0 / alpha))


def _blocked(metric: str, tally: Tally) -> str | None:
    if metric == "latency_p99" and tally.n_candidate < P99_MIN_CANDIDATE:
        return f"p99 needs n_B ≥ {P99_MIN_CANDIDATE} (n_B = {tally.n_candidate})"
    return None


NO_SUMMARY = (float("nan"), float("nan"), float("nan"))


def check_guardrail(
    rule: MetricRule, tally: Tally, alpha_harm: float, alpha: float, tuning: Tuning, detail: bool = True
) -> RuleCheck:
    """Harm test at `alpha_harm`, non-inferiority at `alpha`, CS at 1 − `alpha` (NaN unless `detail`)."""
    test, summary = METRICS[rule.metric]
    margin = rule.margin if rule.margin is not None else 1.0
    c_harm = margin if rule.metric in QUANTILES else HARM_TOLERANCE
    harm = test(tally, c_harm, "greater", alpha_harm, tuning.harm_b, tuning)
    ok = test(tally, margin, "less", alpha, tuning.pass_b, tuning)
    est, lo, hi = summary(tally, alpha, tuning) if detail else NO_SUMMARY
    blocked = _blocked(rule.metric, tally)
    return RuleCheck(rule, "guardrail", est, lo, hi, harm, alpha_harm, ok, alpha, blocked, c_harm)


def check_goal(
    rule: MetricRule, tally: Tally, alpha: float, tuning: Tuning, detail: bool = True
) -> RuleCheck:
    """The goal's one-sided test at `alpha` (no harm test: goals do not roll back)."""
    test, summary = METRICS[rule.metric]
    direction = rule.direction or "decrease"
    c = rewards.goal_factor(direction, rule.min_effect or 0.0)
    side: Side = "greater" if direction == "increase" else "less"
    ok = test(tally, c, side, alpha, tuning.pass_b, tuning)
    est, lo, hi = summary(tally, alpha, tuning) if detail else NO_SUMMARY
    return RuleCheck(rule, "goal", est, lo, hi, None, None, ok, alpha, _blocked(rule.metric, tally))
