"""The versioned experiment state: phase, canary step and the weights in force.

Usage: state = initial_state(experiment); later = advance(experiment, state, now)
Proxies only read a state; the controller and the admin API are its only writers. `version` increases on
every change so replicas can tell which state is newer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from experiments.model import ABStrategy, BlueGreenStrategy, CanaryStrategy, Experiment, ShadowOnlyStrategy

Phase = Literal["shadowing", "progressing", "paused", "promoted", "rolled_back"]
"""`shadowing`: shadows are judged and the candidate gets no traffic yet (`shadow.requireOk`)."""


@dataclass(frozen=True, slots=True)
class ExperimentState:
    """One version of an experiment's live state."""

    experiment: str
    version: int
    phase: Phase
    step: int
    """Index into the canary steps (0 for other strategies)."""
    weights: Mapping[str, float]
    """Percent per serving variant."""
    updated_at: float
    history: tuple[Mapping[str, object], ...] = field(default=())
    """Every change with its reason (and the statistics snapshot behind an automatic decision)."""
    extra: Mapping[str, object] = field(default_factory=dict)
    """Controller bookkeeping, e.g. candidate requests seen when the current step began."""

    def to_json(self) -> dict[str, object]:
        """JSON-ready form (admin API, store)."""
        return {
            "experiment": self.experiment,
            "version": self.version,
            "phase": self.phase,
            "step": self.step,
            "weights": dict(self.weights),
            "updated_at": self.updated_at,
            "history": [dict(h) for h in self.history],
            "extra": dict(self.extra),
        }


def _candidate(experiment: Experiment) -> str:
    return next((v.name for v in experiment.serving if v.role == "candidate"), experiment.stable.name)


def planned_weights(experiment: Experiment, phase: Phase, step: int) -> dict[str, float]:
    """Weights implied by the strategy at `phase`/`step`."""
    stable, candidate = experiment.stable.name, _candidate(experiment)
    if phase == "promoted":
        return {stable: 0.0, candidate: 100.0} if candidate != stable else {stable: 100.0}
    if phase in ("rolled_back", "shadowing"):
        return {stable: 100.0}
    strategy = experiment.strategy
    if isinstance(strategy, CanaryStrategy):
        share = strategy.steps[min(step, len(strategy.steps) - 1)]
        return {stable: 100.0 - share, candidate: share}
    if isinstance(strategy, ABStrategy):
        return dict(strategy.weights)
    if isinstance(strategy, ShadowOnlyStrategy):
        return {stable: 100.0}
    assert isinstance(strategy, BlueGreenStrategy)
    return {strategy.active: 100.0}


def initial_state(experiment: Experiment, now: float = 0.0) -> ExperimentState:
    """Version 1, its creation the first entry of its history: the first canary step, the A/B weights, or
    the blue-green active side — or, when the shadow verdict must be OK first, all traffic on stable."""
    gated = experiment.shadow is not None and experiment.shadow.require_ok
    phase: Phase = (
        "shadowing" if gated or isinstance(experiment.strategy, ShadowOnlyStrategy) else "progressing"
    )
    created = {"version": 1, "at": now, "phase": phase, "step": 0, "reason": "created"}
    return ExperimentState(
        experiment=experiment.name,
        version=1,
        phase=phase,
        step=0,
        weights=planned_weights(experiment, phase, 0),
        updated_at=now,
        history=(created,),
    )


def transition(
    experiment: Experiment,
    state: ExperimentState,
    phase: Phase,
    step: int,
    now: float,
    reason: str,
    **details: object,
) -> ExperimentState:
    """The next version of `state`, with the weights of (`phase`, `step`) and the change in its history."""
    entry = {
        "version": state.version + 1,
        "at": now,
        "phase": phase,
        "step": step,
        "reason": reason,
        **details,
    }
    return replace(
        state,
        version=state.version + 1,
        phase=phase,
        step=step,
        weights=planned_weights(experiment, phase, step),
        updated_at=now,
        history=(*state.history, entry),
    )
