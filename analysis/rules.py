"""The rule of the decision engine as pure functions of one look's evidence: classify every rule →
combine → decide (the order and its reasons: analysis.engine's docstring, docs/statistics.md §6).

Usage: look = classify(...); decision = decide(look, policy, step, candidate_in_step, drops)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from analysis.engine_types import Exposure
from analysis.metrics_eval import Evidence, RuleCheck, check_goal, check_guardrail, finite, fmt_e
from analysis.policy import MAX_DROP_SHARE, Policy, error_floor, harm_margin
from analysis.request_evidence import RequestEvidence
from analysis.slo import SloCheck
from analysis.srm import SRM_ALPHA, srm_flagged, srm_log_bf_split
from analysis.tally import Tally

DecisionKind = Literal["WARMUP", "CONTINUE", "HOLD", "ROLLBACK", "ADVANCE", "PROMOTE", "INCONCLUSIVE"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do now, why, and the statistics behind it (JSON-able)."""

    kind: DecisionKind
    reasons: list[str]
    snapshot: dict[str, Any] = field(default_factory=dict)
    action: Literal["rollback", "hold"] | None = None
    """For INCONCLUSIVE: what the experiment's `onInconclusive` asks for."""


@dataclass(frozen=True, slots=True)
class Look:
    """Every rule classified at one look, and the data-quality facts."""

    guardrails: tuple[RuleCheck, ...]
    goals: tuple[RuleCheck, ...]
    srm_log_bf: float
    srm_flagged: bool
    exposure: Exposure
    slo: tuple[SloCheck, ...] = ()
    reward_hold: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def n_stable(self) -> int:
        """Stable records analysed."""
        return self.exposure.n_stable

    @property
    def n_candidate(self) -> int:
        """Candidate records analysed."""
        return self.exposure.n_candidate


def classify(
    ev: Evidence,
    policy: Policy,
    srm_log_bf: float,
    exposure: Exposure,
    srm_latched: bool = False,
    detail: bool = True,
) -> Look:
    """Stage 1: each guardrail (harm at α/(K·J), non-inferiority at α/J), each goal, and the SRM check.

    `detail=False` skips estimates and bounds (NaN): decisions never depend on them, simulations go faster.
    """
    k = max(len(policy.guardrails), 1)
    a = policy.comparison_alpha
    guards = tuple(
        check_guardrail(rule, ev, a / k, a, harm_margin(rule), error_floor(rule), detail)
        for rule in policy.guardrails
    )
    goals = tuple(check_goal(rule, ev, a, detail) for rule in policy.goals)
    flagged = srm_latched or srm_flagged(srm_log_bf)
    return Look(guards, goals, srm_log_bf, flagged, exposure)


def snapshot_of(look: Look, step: int, drops: Mapping[str, int]) -> dict[str, Any]:
    """The JSON snapshot of a look."""
    return {
        "srm": {"log_bf": finite(look.srm_log_bf), "flagged": look.srm_flagged},
        "metrics": [c.as_json() for c in (*look.guardrails, *look.goals)],
        **look.exposure.as_json(),
        "slo": [s.as_json() for s in look.slo],
        "reward_arrival": look.reward_hold,
        "notes": list(look.notes),
        "step": step,
        "drops": {"stable": int(drops.get("stable", 0)), "candidate": int(drops.get("candidate", 0))},
    }


def _drop_reasons(look: Look, drops: Mapping[str, int]) -> list[str]:
    out = []
    for arm, n in (("stable", look.n_stable), ("candidate", look.n_candidate)):
        lost = int(drops.get(arm, 0))
        if lost > MAX_DROP_SHARE * (n + lost):
            out.append(f"{arm}: {lost} outcomes dropped > {MAX_DROP_SHARE:.1%} of {n + lost}; no promotion")
    return out


def _warmup(look: Look, policy: Policy) -> str | None:
    ex = look.exposure
    least = min(ex.n_stable, ex.n_candidate)
    if least < policy.min_exposure:
        return (
            f"minimum exposure: {policy.min_exposure} records per arm "
            f"(stable {ex.n_stable}, candidate {ex.n_candidate})"
        )
    if ex.unit == "unit" and min(ex.units_stable, ex.units_candidate) < policy.min_units:
        return (
            f"minimum exposure: {policy.min_units} units per arm "
            f"(stable {ex.units_stable}, candidate {ex.units_candidate})"
        )
    return None


def _limit(look: Look, policy: Policy) -> str | None:
    ex = look.exposure
    if policy.max_requests is not None and ex.n_candidate >= policy.max_requests:
        return f"maxRequests: {ex.n_candidate} ≥ {policy.max_requests} candidate records undecided"
    if policy.max_units is not None and ex.unit == "unit" and ex.units_candidate >= policy.max_units:
        return f"maxUnits: {ex.units_candidate} ≥ {policy.max_units} candidate units undecided"
    if policy.max_duration_s is not None and (ex.duration_s or 0.0) >= policy.max_duration_s:
        return f"maxDuration: {ex.duration_s:.0f} s ≥ {policy.max_duration_s:g} s undecided"
    return None


def combine(
    look: Look, policy: Policy, step: int, candidate_in_step: int, drops: Mapping[str, int]
) -> Decision:
    """Stage 2: the first stage of the rule (ROLLBACK, WARMUP, HOLD, PROMOTE/ADVANCE, ...) that applies."""
    snap = snapshot_of(look, step, drops)
    harmful = [c.harm_reason() for c in look.guardrails if c.harmful]
    harmful += [s.reason() for s in look.slo if s.broken]
    if harmful:
        return Decision("ROLLBACK", harmful, snap)
    waiting = _warmup(look, policy)
    if waiting is not None:
        return Decision("WARMUP", [waiting], snap)
    limit = _limit(look, policy)
    rules = (*look.guardrails, *look.goals)
    pending = [c.pass_reason() for c in rules if not c.passed]
    if look.srm_flagged:
        bf = f"SRM Bayes factor {fmt_e(look.srm_log_bf)}"
        srm = f"sample ratio mismatch: {bf} ≥ 1/α_srm = {1 / SRM_ALPHA:g} (latched; holds promotion only)"
        if limit is not None:
            return Decision("INCONCLUSIVE", [limit, srm, *pending], snap, policy.on_inconclusive)
        return Decision("HOLD", [srm], snap)
    if not pending:
        passed = [c.pass_reason() for c in rules]
        held = _drop_reasons(look, drops) + ([look.reward_hold] if look.reward_hold else [])
        if held:
            return Decision("HOLD", [*held, *passed], snap)
        if step >= policy.last_step:
            return Decision("PROMOTE", passed, snap)
        if candidate_in_step >= policy.min_requests_per_step:
            return Decision("ADVANCE", passed, snap)
        need = f"minRequestsPerStep: {candidate_in_step} < {policy.min_requests_per_step} candidate records"
        return Decision("CONTINUE", [need, *passed], snap)
    if limit is not None:
        return Decision("INCONCLUSIVE", [limit, *pending], snap, policy.on_inconclusive)
    return Decision("CONTINUE", pending, snap)


def decide(
    tally: Tally,
    policy: Policy,
    step: int,
    candidate_in_step: int,
    drops: Mapping[str, int],
    srm_latched: bool = False,
    detail: bool = True,
) -> Decision:
    """The per-request decision at a look on `tally` (pure; `drops` per role), for simulations."""
    ev = RequestEvidence(tally, policy.tuning, floors(policy))
    exposure = Exposure(tally.n_stable, tally.n_candidate)
    look = classify(ev, policy, srm_log_bf_split(tally.requests), exposure, srm_latched, detail)
    return combine(look, policy, step, candidate_in_step, drops)


def floors(policy: Policy) -> dict[str, float]:
    """The error-rate guardrails' absolute floors (analysis.policy.error_floor), by metric."""
    return {r.metric: error_floor(r) for r in policy.guardrails if r.metric == "error_rate"}


__all__ = ["Decision", "DecisionKind", "Look", "classify", "combine", "decide", "floors", "snapshot_of"]
