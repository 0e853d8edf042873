"""The decision policy of one experiment: its `spec.analysis` and strategy with outrider's defaults filled in.

Usage: `policy = Policy.from_experiment(experiment)`

Defaults (where `analysis` is absent or silent): α = 0.05; guardrails error_rate ×1.2, latency_gmean ×1.05,
latency_p99 ×1.10 (used only when no guardrail is configured); harm margins error_rate 1.0, latency metrics
their margin; error floor 0.001. Minimum exposure for promotion: 500 records on each arm (the normal mixture's
burn-in) and, when the unit of analysis is a user, 100 units on each arm. Harm tests start as soon as they are
valid: the per-request error test at once, the per-request normal mixtures at 500 candidate records, the
unit-level tests at 100 units per arm. With J candidates each is compared with stable at α/J. Mixture tuning:
harm tests are tightest at 2,000 candidate requests (catch a regression early), non-inferiority and goals
at `maxRequests` candidate requests or 20,000 when there is no limit. Mis-tuning costs power, never validity.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.metrics_eval import Tuning
from experiments.model import ABStrategy, AnalysisSpec, CanaryStrategy, Experiment, MetricRule, OnInconclusive

DEFAULT_ALPHA = 0.05
DEFAULT_GUARDRAILS = (
    MetricRule("error_rate", margin=1.2),
    MetricRule("latency_gmean", margin=1.05),
    MetricRule("latency_p99", margin=1.10),
)
MIN_EXPOSURE = 500
MIN_UNITS = 100
"""Units per arm before a unit-level test may act (their validity is asymptotic in units)."""
DEFAULT_ERROR_FLOOR = 0.001
DEFAULT_UNIT_CAP = 1000
HARM_TUNING = 2_000
PASS_TUNING = 20_000
MAX_DROP_SHARE = 0.001
"""Never promote while more than this share of an arm's outcomes were dropped."""
DEFAULT_TUNING = Tuning(0.1, HARM_TUNING, PASS_TUNING)


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything `engine.decide` needs besides the data."""

    alpha: float = DEFAULT_ALPHA
    guardrails: tuple[MetricRule, ...] = DEFAULT_GUARDRAILS
    goals: tuple[MetricRule, ...] = ()
    max_requests: int | None = None
    """Candidate requests after which an undecided experiment is INCONCLUSIVE (None: never)."""
    on_inconclusive: OnInconclusive = "rollback"
    steps: tuple[float, ...] = (100.0,)
    """Candidate shares (percent) of the steps before promotion; a decision at the last one promotes."""
    min_requests_per_step: int = 0
    min_exposure: int = MIN_EXPOSURE
    tuning: Tuning = DEFAULT_TUNING
    unit_mode: bool = False
    """True when the unit of assignment is a user (header or claim): every test takes the unit as the
    observation. False: each request is randomised on its own and the per-request tests apply."""
    min_units: int = MIN_UNITS
    max_units: int | None = None
    """Candidate units after which an undecided experiment is INCONCLUSIVE (None: never)."""
    max_duration_s: float | None = None
    """Seconds of records (first to last record) after which an undecided experiment is INCONCLUSIVE."""
    unit_cap: int = DEFAULT_UNIT_CAP
    comparisons: int = 1
    """Candidates compared with stable; each comparison runs at α/comparisons."""
    pair_share: float | None = None
    """ρ = p_cand/(p_cand + p_stable) from the planned weights when more than two variants serve (a stable
    record's own probability does not give it); None: ρ comes from each record's logged probability."""

    @property
    def metrics(self) -> tuple[str, ...]:
        """Every metric a rule of this policy reads."""
        return tuple(r.metric for r in (*self.guardrails, *self.goals))

    @property
    def comparison_alpha(self) -> float:
        """α of this comparison (α split over the candidates)."""
        return self.alpha / max(self.comparisons, 1)

    @property
    def last_step(self) -> int:
        """Index of the step at which passing means PROMOTE rather than ADVANCE."""
        return max(len(self.steps) - 1, 0)

    @staticmethod
    def from_experiment(experiment: Experiment, candidate: str) -> Policy:
        """The policy for `experiment`, judging `candidate` against its stable variant."""
        spec = experiment.analysis or AnalysisSpec()
        strategy = experiment.strategy
        steps: tuple[float, ...] = (100.0,)
        per_step = 0
        share = 0.5
        if isinstance(strategy, CanaryStrategy):
            steps = tuple(s for s in strategy.steps if s < 100.0) or (100.0,)
            per_step = strategy.min_requests_per_step
            share = steps[0] / 100.0
        elif isinstance(strategy, ABStrategy):
            w_b, w_a = strategy.weights.get(candidate, 0.0), strategy.weights.get(experiment.stable.name, 0.0)
            share = w_b / (w_a + w_b) if w_a + w_b > 0 else 0.5
        share = min(max(share, 0.01), 0.99)
        pass_b = float(spec.max_requests) if spec.max_requests else float(PASS_TUNING)
        candidates = sum(1 for v in experiment.serving if v.role == "candidate")
        pair_share = None
        if isinstance(strategy, ABStrategy) and len(experiment.serving) > 2:
            pair_share = share
        return Policy(
            unit_mode=experiment.unit.kind != "request",
            max_units=spec.max_units,
            max_duration_s=spec.max_duration_s,
            unit_cap=spec.unit_cap,
            comparisons=max(candidates, 1),
            pair_share=pair_share,
            alpha=spec.alpha,
            guardrails=spec.guardrails or DEFAULT_GUARDRAILS,
            goals=spec.goals,
            max_requests=spec.max_requests,
            on_inconclusive=spec.on_inconclusive,
            steps=steps,
            min_requests_per_step=per_step,
            tuning=Tuning(share, float(HARM_TUNING), pass_b),
        )


def harm_margin(rule: MetricRule) -> float:
    """The ratio that counts as harm for `rule`: its `harmMargin`, else 1.0 for errors, else its margin."""
    if rule.harm_margin is not None:
        return rule.harm_margin
    if rule.metric == "error_rate":
        return 1.0
    return rule.margin if rule.margin is not None else 1.0


def error_floor(rule: MetricRule) -> float:
    """The absolute tolerance of the error-rate non-inferiority test (0 for other metrics)."""
    if rule.metric != "error_rate":
        return 0.0
    return rule.error_floor if rule.error_floor is not None else DEFAULT_ERROR_FLOOR
