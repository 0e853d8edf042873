"""What each metric name means, and one rule (guardrail or goal) classified against the tally.

Usage: `check = check_guardrail(MetricRule("error_rate", margin=1.2), tally, alpha_harm, alpha, tuning)`

Every metric answers two questions about the candidate/stable comparison, on the e-value scale (reject at α
iff log E ≥ log(1/α)): "is B above c times A?" and "is B below c times A?" (`side` greater / less), and
gives an estimate with an anytime CS. Estimates are ratios candidate/stable for `error_rate` and the latency
metrics, and the difference candidate − stable for `reward_mean`.

- error_rate: event attribution (exact). latency_gmean: ψ on log latency (ratio of geometric means).
  latency_mean: ψ(c) on latency (ratio of means, Fieller CS). latency_p50 / p99: quantile CS, a rule
  compares lower(CS_B) with c·upper(CS_A). reward_mean: ψ(c) on rewards.
- Harm (rollback) is "B worse than harmMargin × A" (`policy.harm_margin`: 1.0 for errors, the margin for
  latency); non-inferiority is "B better than margin × A" (c = margin).
- A goal "decrease by m" rejects B ≥ (1 − m)·A (latency, relative); a reward goal "increase by m" rejects
  μ_B − μ_A ≤ m (rewards, absolute difference).
- The reported interval is the pair of bounds the decision used (`analysis.bounds`): the harm test's lower
  bound at α/K and the non-inferiority test's upper bound at α; for goals the goal test's bound at α.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from analysis import bounds
from analysis.bounds import Scale
from analysis.wording import evalue
from experiments.model import MetricRule

Side = Literal["greater", "less"]
HARM_TOLERANCE = 1.0
P99_MIN_CANDIDATE = 5000
"""p99 needs tail data: no promotion on p99 before this many candidate requests."""
QUANTILES = {"latency_p50": 0.5, "latency_p99": 0.99}
INTERVAL_LABEL = "decision bounds: harm lower bound at α/K, non-inferiority upper bound at α"
GOAL_LABEL = "decision bound: the goal test's bound at α"


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


class Evidence(Protocol):
    """The tests of one comparison (candidate vs stable), per request or per unit."""

    unit: Literal["request", "unit"]
    n_stable: int
    n_candidate: int

    def log_e(self, rule: MetricRule, c: float, side: Side, alpha: float, role: str) -> float:
        """log E against H0 "candidate ≤ c × stable" (`greater`) or "≥" (`less`); c is a difference for
        reward_mean. `role` is harm, pass or goal (each has its own mixture tuning)."""
        ...

    def estimate(self, rule: MetricRule) -> float:
        """Point estimate: candidate/stable ratio, or candidate − stable for reward_mean."""
        ...

    def harm_wait(self, rule: MetricRule) -> str | None:
        """Why the harm test may not act yet (its validity needs more data), or None."""
        ...

    def pass_block(self, rule: MetricRule) -> str | None:
        """Why the rule may not pass yet whatever its e-value, or None."""
        ...

    def scale(self, rule: MetricRule) -> Scale:
        """Where its bounds are searched."""
        ...


def fmt_e(log_e: float) -> str:
    """An e-value for people (analysis.wording: 3 significant digits, never inf)."""
    return evalue(float(log_e))


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """One rule classified at one look: estimate, decision bounds, e-values, and what they mean."""

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
    """The c of the harm test's H0: candidate ≤ c × stable (harmMargin)."""
    pass_factor: float = 1.0
    """The c of the non-inferiority / goal test's H0."""
    floor: float = 0.0
    """error_rate: the absolute tolerance added to the margin."""
    harm_wait: str | None = None
    """Why the harm test may not act yet."""
    unit: str = "request"

    @property
    def harmful(self) -> bool:
        """The harm test rejected at its level (and is valid already)."""
        return (
            self.harm_wait is None
            and self.alpha_harm is not None
            and _rejects(self.log_e_harm, self.alpha_harm)
        )

    @property
    def passed(self) -> bool:
        """The non-inferiority (guardrail) or goal test rejected, and nothing blocks it."""
        return self.blocked is None and _rejects(self.log_e_pass, self.alpha_pass)

    def harm_reason(self) -> str:
        """Which harm e-value met which threshold (or did not)."""
        e, a = self.log_e_harm or 0.0, self.alpha_harm or 1.0
        op = "≥" if self.harmful else "<"
        h0 = f"H0: candidate ≤ {self.harm_factor:g} × stable"
        wait = f"; {self.harm_wait}" if self.harm_wait else ""
        return (
            f"{self.rule.metric}: harm e-value {fmt_e(e)} {op} 1/(α/K) = {1 / a:.3g} "
            f"({h0}; {self._est()}){wait}"
        )

    def pass_reason(self) -> str:
        """Which non-inferiority / goal e-value met which threshold (or did not, or is blocked)."""
        r = self.rule
        if self.role == "guardrail":
            floor = f" + {self.floor:g}" if self.floor > 0 else ""
            test, h0 = "non-inferiority", f"H0: candidate ≥ {self.pass_factor:g} × stable{floor}"
        else:
            test, h0 = "goal", f"goal: {r.direction} by ≥ {r.min_effect or 0:g}"
        op = "≥" if _rejects(self.log_e_pass, self.alpha_pass) else "<"
        tail = f"; {self.blocked}" if self.blocked else ""
        e, inv = fmt_e(self.log_e_pass), 1 / self.alpha_pass
        return f"{r.metric}: {test} e-value {e} {op} 1/α = {inv:.3g} ({h0}; {self._est()}){tail}"

    def _est(self) -> str:
        if self.role == "goal":
            return f"estimate {self.estimate:.4g}, bounds [{self.ci_low:.4g}, {self.ci_high:.4g}] at α"
        return (
            f"estimate {self.estimate:.4g}, lower bound {self.ci_low:.4g} at α/K vs harm margin "
            f"{self.harm_factor:g}, upper bound {self.ci_high:.4g} at α vs margin {self.pass_factor:g}"
        )

    def as_json(self) -> dict[str, Any]:
        """The snapshot entry (non-finite numbers become null)."""
        return {
            "name": self.rule.metric,
            "role": self.role,
            "margin": self.rule.margin,
            "harm_margin": self.harm_factor if self.role == "guardrail" else None,
            "error_floor": self.floor if self.rule.metric == "error_rate" else None,
            "direction": self.rule.direction,
            "min_effect": self.rule.min_effect,
            "estimate": finite(self.estimate),
            "ci_low": finite(self.ci_low),
            "ci_high": finite(self.ci_high),
            "interval": GOAL_LABEL if self.role == "goal" else INTERVAL_LABEL,
            "alpha_low": self.alpha_harm if self.role == "guardrail" else self.alpha_pass,
            "alpha_high": self.alpha_pass,
            "unit": self.unit,
            "log_e_harm": finite(self.log_e_harm),
            "log_e_noninf": finite(self.log_e_pass),
            "harm": self.harmful,
            "harm_wait": self.harm_wait,
            "passed": self.passed,
            "blocked": self.blocked,
        }


def finite(x: float | None) -> float | None:
    """`x` if it is a finite number, else None (JSON has no inf or NaN)."""
    return float(x) if x is not None and np.isfinite(x) else None


def _rejects(log_e: float | None, alpha: float) -> bool:
    return log_e is not None and log_e >= float(np.log(1.0 / alpha))


NAN = float("nan")


def check_guardrail(
    rule: MetricRule,
    ev: Evidence,
    alpha_harm: float,
    alpha: float,
    harm_margin: float,
    floor: float = 0.0,
    detail: bool = True,
) -> RuleCheck:
    """Harm test at `alpha_harm` (H0: B ≤ harm_margin × A), non-inferiority at `alpha` (H0: B ≥ margin × A
    [+ floor]); with `detail`, the estimate and the two bounds those tests imply (else NaN)."""
    margin = rule.margin if rule.margin is not None else 1.0
    harm = ev.log_e(rule, harm_margin, "greater", alpha_harm, "harm")
    ok = ev.log_e(rule, margin, "less", alpha, "pass")
    est, lo, hi = ev.estimate(rule), NAN, NAN
    if detail:
        sc = ev.scale(rule)
        ell_h, ell_p = float(np.log(1 / alpha_harm)), float(np.log(1 / alpha))
        lo = bounds.lower_bound(lambda c: ev.log_e(rule, c, "greater", alpha_harm, "harm") >= ell_h, sc, est)
        hi = bounds.upper_bound(lambda c: ev.log_e(rule, c, "less", alpha, "pass") >= ell_p, sc, est)
    return RuleCheck(
        rule, "guardrail", est, lo, hi, harm, alpha_harm, ok, alpha,
        ev.pass_block(rule), harm_margin, margin, floor, ev.harm_wait(rule), ev.unit,
    )  # fmt: skip


def goal_null(rule: MetricRule) -> float:
    """The c a goal must reject: an absolute difference for rewards, a ratio 1 ± minEffect otherwise."""
    m = rule.min_effect or 0.0
    if rule.metric == "reward_mean":
        return m if rule.direction == "increase" else -m
    return 1.0 + m if rule.direction == "increase" else 1.0 - m


def check_goal(rule: MetricRule, ev: Evidence, alpha: float, detail: bool = True) -> RuleCheck:
    """The goal's one-sided test at `alpha` (no harm test: goals do not roll back)."""
    c = goal_null(rule)
    side: Side = "greater" if rule.direction == "increase" else "less"
    ok = ev.log_e(rule, c, side, alpha, "goal")
    est, lo, hi = ev.estimate(rule), NAN, NAN
    if detail:
        sc, ell = ev.scale(rule), float(np.log(1 / alpha))
        lo = bounds.lower_bound(lambda x: ev.log_e(rule, x, "greater", alpha, "goal") >= ell, sc, est)
        hi = bounds.upper_bound(lambda x: ev.log_e(rule, x, "less", alpha, "goal") >= ell, sc, est)
    block = ev.pass_block(rule)
    return RuleCheck(rule, "goal", est, lo, hi, None, None, ok, alpha, block, 1.0, c, 0.0, None, ev.unit)
