"""Experiments with several candidates: each candidate is compared with stable on its own, at α/J.

Usage: `judge = judge_for(experiment)` (a plain `Judge` when there is one candidate); then as a `Judge`.

Each comparison sees only the records of its pair, with ρ = p_cand / (p_cand + p_stable) from the planned
weights (never 1 − p_cand, which is wrong with three or more arms), and runs at α/J (Bonferroni over the J
comparisons), so the experiment-wide chance of any false decision stays ≤ α. A harmful candidate rolls the
experiment back; promotion follows the first candidate (the one the experiment promotes), and only while no
other candidate is harmful.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from analysis.engine import Judge
from analysis.rules import Decision
from experiments.model import Experiment, ShadowOnlyStrategy
from experiments.outcome import OutcomeRecord


class Comparisons:
    """One `Judge` per candidate; decides for the experiment."""

    def __init__(self, experiment: Experiment) -> None:
        names = [v.name for v in experiment.serving if v.role == "candidate"]
        self.judges = [Judge(experiment, name) for name in names]

    def observe(self, records: Sequence[OutcomeRecord]) -> None:
        """Outcomes, in arrival order (each comparison keeps its own pair)."""
        for j in self.judges:
            j.observe(records)

    def observe_rewards(self, records: Sequence[OutcomeRecord]) -> None:
        """Matured rewards."""
        for j in self.judges:
            j.observe_rewards(records)

    def mature(self, cutoff: float) -> None:
        """Requests at or before `cutoff` have had their feedback window."""
        for j in self.judges:
            j.mature(cutoff)

    def latched(self) -> list[str]:
        """Candidates whose sample-ratio check has fired."""
        return [name for j in self.judges for name in j.latched()]

    def latch(self, candidates: Sequence[str]) -> None:
        """Restore the sample-ratio latches after a restart."""
        for j in self.judges:
            j.latch(candidates)

    def decide(
        self,
        *,
        step: int,
        candidate_in_step: int,
        drops: Mapping[str, int] | None = None,
        detail: bool = True,
    ) -> Decision:
        """Any harmful candidate → ROLLBACK; otherwise the first candidate's decision."""
        decisions = [
            j.decide(step=step, candidate_in_step=candidate_in_step, drops=drops, detail=detail)
            for j in self.judges
        ]
        snapshot = self._merged([d.snapshot for d in decisions])
        harmful = [(j, d) for j, d in zip(self.judges, decisions, strict=True) if d.kind == "ROLLBACK"]
        if harmful:
            reasons = [f"{j.candidate}: {r}" for j, d in harmful for r in d.reasons]
            return Decision("ROLLBACK", reasons, snapshot)
        first = decisions[0]
        return Decision(first.kind, list(first.reasons), snapshot, first.action)

    def snapshot(self) -> dict[str, Any]:
        """The first comparison's statistics, with every comparison under `comparisons`."""
        return self._merged([j.snapshot() for j in self.judges])

    def _merged(self, snaps: list[dict[str, Any]]) -> dict[str, Any]:
        comparisons = {j.candidate: s for j, s in zip(self.judges, snaps, strict=True)}
        return {**snaps[0], "comparisons": comparisons}


@dataclass(frozen=True, slots=True)
class Waiting:
    """The decision of a judge with nothing to compare."""

    kind: str
    reasons: list[str]
    snapshot: dict[str, Any]


class NoComparison:
    """The judge of a shadow-only experiment: no candidate, so no statistics and no decision of its own
    (its shadows' verdict, analysis.shadow_judge, ends it)."""

    NOTE = "shadow-only: every request is served by stable; the shadow verdict is the result"

    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment

    def observe(self, records: Sequence[OutcomeRecord]) -> None:
        """Nothing to compare."""

    def observe_rewards(self, records: Sequence[OutcomeRecord]) -> None:
        """Nothing to compare."""

    def mature(self, cutoff: float) -> None:
        """Nothing to compare."""

    def latched(self) -> list[str]:
        """No sample-ratio check without a split."""
        return []

    def latch(self, candidates: Sequence[str]) -> None:
        """No sample-ratio check without a split."""

    def decide(
        self,
        *,
        step: int,
        candidate_in_step: int,
        drops: Mapping[str, int] | None = None,
        detail: bool = True,
    ) -> Waiting:
        """Always CONTINUE."""
        return Waiting("CONTINUE", [self.NOTE], self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """No metrics: a note instead."""
        return {"metrics": [], "notes": [self.NOTE], "step": 0}


def judge_for(experiment: Experiment) -> Judge | Comparisons | NoComparison:
    """The judge of `experiment`: one comparison, one per candidate, or none (shadow-only)."""
    candidates = sum(1 for v in experiment.serving if v.role == "candidate")
    if isinstance(experiment.strategy, ShadowOnlyStrategy):
        return NoComparison(experiment)
    return Comparisons(experiment) if candidates > 1 else Judge(experiment)
