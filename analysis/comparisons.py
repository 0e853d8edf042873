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
from typing import Any

from analysis.engine import Decision, Judge
from experiments.model import Experiment
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


def judge_for(experiment: Experiment) -> Judge | Comparisons:
    """The judge of `experiment`: one comparison, or one per candidate."""
    candidates = sum(1 for v in experiment.serving if v.role == "candidate")
    return Comparisons(experiment) if candidates > 1 else Judge(experiment)
