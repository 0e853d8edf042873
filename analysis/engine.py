"""The decision engine (STATS.md §2): classify every rule → combine → decide, with a reason for each step.

Usage:
    judge = Judge(experiment)
    judge.observe(records)                     # outcomes, in arrival order
    decision = judge.decide(step=0, candidate_in_step=n, drops={"stable": 0, "candidate": 0})

At every look: WARMUP until both arms have the minimum exposure → HOLD on a sample ratio mismatch (latched:
the SRM Bayes factor is an e-process, once over 1/α_srm it stays flagged) → ROLLBACK if any guardrail's harm
test rejects at α/K (Bonferroni over K guardrails) → PROMOTE at the last canary step / ADVANCE (after
`minRequestsPerStep` candidate requests in the step) if every guardrail's non-inferiority test and every
goal's test rejects at α; HOLD instead while outcome drops exceed 0.1% of an arm → INCONCLUSIVE at
`maxRequests` candidate requests (action: `onInconclusive`) → else CONTINUE. E-processes never reset
between steps. `decide` is a pure function of the tally; `Judge` only holds the tally and the SRM latch, so
the same records with the same looks always give the same decisions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from analysis import tally as tally_mod
from analysis.columns import Columns, from_records
from analysis.metrics_eval import RuleCheck, check_goal, check_guardrail, finite, fmt_e
from analysis.policy import MAX_DROP_SHARE, Policy
from analysis.srm import SRM_ALPHA, srm_flagged, srm_log_bf_split
from analysis.tally import Tally, tracks_for
from experiments.model import Experiment
from experiments.outcome import OutcomeRecord

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
    n_stable: int
    n_candidate: int


def classify(tally: Tally, policy: Policy, srm_latched: bool = False, detail: bool = True) -> Look:
    """Stage 1: each guardrail (harm at α/K, non-inferiority at α), each goal, and the SRM check.

    `detail=False` skips estimates and CSs (NaN): decisions never depend on them, simulations go faster.
    """
    k = max(len(policy.guardrails), 1)
    a, tu = policy.alpha, policy.tuning
    guards = tuple(check_guardrail(rule, tally, a / k, a, tu, detail) for rule in policy.guardrails)
    goals = tuple(check_goal(rule, tally, a, tu, detail) for rule in policy.goals)
    log_bf = srm_log_bf_split(tally.requests)
    flagged = srm_latched or srm_flagged(log_bf)
    return Look(guards, goals, log_bf, flagged, tally.n_stable, tally.n_candidate)


def snapshot_of(look: Look, step: int, drops: Mapping[str, int]) -> dict[str, Any]:
    """The JSON snapshot of a look."""
    return {
        "srm": {"log_bf": finite(look.srm_log_bf), "flagged": look.srm_flagged},
        "metrics": [c.as_json() for c in (*look.guardrails, *look.goals)],
        "n_stable": look.n_stable,
        "n_candidate": look.n_candidate,
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


def combine(
    look: Look, policy: Policy, step: int, candidate_in_step: int, drops: Mapping[str, int]
) -> Decision:
    """Stage 2: the first stage of the rule (WARMUP, HOLD, ROLLBACK, PROMOTE/ADVANCE, ...) that applies."""
    snap = snapshot_of(look, step, drops)
    least = min(look.n_stable, look.n_candidate)
    if least < policy.min_exposure:
        why = f"minimum exposure: {policy.min_exposure} requests per arm"
        return Decision("WARMUP", [f"{why} (stable {look.n_stable}, candidate {look.n_candidate})"], snap)
    if look.srm_flagged:
        bf = f"SRM Bayes factor {fmt_e(look.srm_log_bf)}"
        return Decision(
            "HOLD", [f"sample ratio mismatch: {bf} ≥ 1/α_srm = {1 / SRM_ALPHA:g} (latched)"], snap
        )
    harmful = [c.harm_reason() for c in look.guardrails if c.harmful]
    if harmful:
        return Decision("ROLLBACK", harmful, snap)
    rules = (*look.guardrails, *look.goals)
    pending = [c.pass_reason() for c in rules if not c.passed]
    if not pending:
        passed = [c.pass_reason() for c in rules]
        lost = _drop_reasons(look, drops)
        if lost:
            return Decision("HOLD", [*lost, *passed], snap)
        if step >= policy.last_step:
            return Decision("PROMOTE", passed, snap)
        if candidate_in_step >= policy.min_requests_per_step:
            return Decision("ADVANCE", passed, snap)
        need = f"minRequestsPerStep: {candidate_in_step} < {policy.min_requests_per_step} candidate requests"
        return Decision("CONTINUE", [need, *passed], snap)
    if policy.max_requests is not None and look.n_candidate >= policy.max_requests:
        limit = f"maxRequests: {look.n_candidate} ≥ {policy.max_requests} candidate requests undecided"
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
    """The decision at a look on `tally` (pure: classify, then combine)."""
    return combine(classify(tally, policy, srm_latched, detail), policy, step, candidate_in_step, drops)


def candidate_of(experiment: Experiment) -> str:
    """The first variant with role `candidate` (ValueError if none)."""
    for v in experiment.serving:
        if v.role == "candidate":
            return v.name
    raise ValueError(f"experiment {experiment.name!r} has no candidate variant to judge")


class Judge:
    """Holds one experiment's tally between looks; all statistics are pure functions of it."""

    def __init__(
        self, experiment: Experiment, candidate: str | None = None, policy: Policy | None = None
    ) -> None:
        self.stable = experiment.stable.name
        self.candidate = candidate or candidate_of(experiment)
        self.policy = policy or Policy.from_experiment(experiment, self.candidate)
        self.tally = Tally(tracks_for(self.policy.metrics))
        self.srm_latched = False
        self._last: Decision | None = None

    def observe(self, records: Sequence[OutcomeRecord]) -> None:
        """Add outcomes in arrival order (skips pinned records and other variants; ignores rewards)."""
        self.observe_columns(from_records(records, self.stable, self.candidate))

    def observe_rewards(self, records: Sequence[OutcomeRecord]) -> None:
        """Add matured rewards (records with `reward` set; each keeps its request's arm and p_variant)."""
        self.observe_reward_columns(from_records(records, self.stable, self.candidate))

    def observe_columns(self, cols: Columns) -> None:
        """Add outcomes given as columns (simulations, offline analysis)."""
        self.tally = tally_mod.update(self.tally, cols)

    def observe_reward_columns(self, cols: Columns) -> None:
        """Add rewards given as columns."""
        self.tally = tally_mod.update_rewards(self.tally, cols)

    def decide(
        self,
        *,
        step: int,
        candidate_in_step: int,
        drops: Mapping[str, int] | None = None,
        detail: bool = True,
    ) -> Decision:
        """Decide now; `step` indexes the canary steps, `drops` counts lost outcomes per arm.

        `detail=False` leaves estimates and CIs out of the snapshot (same decision, less work).
        """
        latched = self.srm_latched
        decision = decide(self.tally, self.policy, step, candidate_in_step, drops or {}, latched, detail)
        self.srm_latched = bool(decision.snapshot["srm"]["flagged"])
        self._last = decision
        return decision

    def snapshot(self) -> dict[str, Any]:
        """The statistics now, as at a look at the last decided step (JSON-able)."""
        step = int(self._last.snapshot["step"]) if self._last is not None else 0
        drops = self._last.snapshot["drops"] if self._last is not None else {}
        return snapshot_of(classify(self.tally, self.policy, self.srm_latched), step, drops)
