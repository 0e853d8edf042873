"""What the looker (analysis.verdict) needs of a judge and of its decisions: the engine's `Judge` and
`analysis.comparisons.Comparisons` both fit; tests use small fakes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from experiments.outcome import OutcomeRecord


class DecisionLike(Protocol):
    """What the judge returns at a look."""

    @property
    def kind(self) -> str:
        """WARMUP, CONTINUE, HOLD, ROLLBACK, ADVANCE, PROMOTE or INCONCLUSIVE."""
        ...

    @property
    def reasons(self) -> list[str]:
        """Why, in words."""
        ...

    @property
    def snapshot(self) -> dict[str, Any]:
        """The statistics behind it."""
        ...


class JudgeLike(Protocol):
    """The statistics behind decisions (analysis.engine.Judge)."""

    def observe(self, records: Sequence[OutcomeRecord]) -> None:
        """Add outcomes, in arrival order."""
        ...

    def observe_rewards(self, records: Sequence[OutcomeRecord]) -> None:
        """Add rewards (outcomes with `reward` set)."""
        ...

    def decide(
        self, *, step: int, candidate_in_step: int, drops: Mapping[str, int], detail: bool = True
    ) -> DecisionLike:
        """Decide now (`detail=False`: the same decision without estimates and bounds in its snapshot)."""
        ...

    def mature(self, cutoff: float) -> None:
        """Requests at or before `cutoff` (records' clock) have had their whole feedback window."""
        ...

    def latched(self) -> list[str]:
        """Candidates whose sample-ratio check has fired (kept for good, persisted in the state)."""
        ...

    def latch(self, candidates: Sequence[str]) -> None:
        """Restore the sample-ratio latch of these candidates (after a restart)."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """The statistics now as JSON, with estimates and bounds, as at the last look."""
        ...
