"""The `strategy` section of an experiment file: canary, abTest, blueGreen or shadow (exactly one).

Usage: `Strategy.model_validate({"canary": {"steps": [5, 25, 50]}})` (as part of `ExperimentFile`)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, StrictFloat, StrictInt, field_validator

from experiments.schema_types import Percent, Section, problem


class Canary(Section):
    """The candidate's share of units rises through `steps`; 100 means promoted."""

    steps: tuple[Annotated[StrictFloat, Field(gt=0, le=100)], ...] = Field(min_length=1)
    """Percent of units on the candidate at each step, strictly increasing, each in (0, 100]."""
    min_requests_per_step: StrictInt = Field(0, ge=0)
    """Candidate requests needed before a step may advance."""

    @field_validator("steps")
    @classmethod
    def _increasing(cls, steps: tuple[float, ...]) -> tuple[float, ...]:
        for i in range(1, len(steps)):
            if steps[i] <= steps[i - 1]:
                message = f"steps must be strictly increasing: {steps[i]:g} follows {steps[i - 1]:g}"
                raise problem(message, at=(i,))
        return steps


class ABTest(Section):
    """Fixed weights over the serving variants."""

    weights: dict[str, Percent]
    """Percent of units per serving variant; every serving variant has one, and they sum to 100."""

    @field_validator("weights")
    @classmethod
    def _sum_to_100(cls, weights: dict[str, float]) -> dict[str, float]:
        total = sum(weights.values())
        if abs(total - 100) > 1e-9:
            raise problem(f"weights sum to {total:g}, must be 100")
        return weights


class BlueGreen(Section):
    """All traffic on one serving variant; switching is all-or-nothing."""

    active: str | None = None
    """The serving variant that takes all traffic; default: the stable one."""


class ShadowOnly(Section):
    """No split: stable serves everything, the shadows get copies, their verdict ends the experiment."""


class Strategy(Section):
    """How traffic is split between the serving variants: exactly one of `canary`, `abTest`, `blueGreen`,
    `shadow`."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})
    canary: Canary | None = None
    """Progressive delivery of the candidate."""
    ab_test: ABTest | None = None
    """A fixed split between variants."""
    blue_green: BlueGreen | None = None
    """All traffic on one variant."""
    shadow: ShadowOnly | None = None
    """No split: every request on stable, copies to the shadow variants, the shadow verdict as the result."""

    @field_validator("canary", "ab_test", "blue_green", "shadow", mode="before")
    @classmethod
    def _written_but_empty(cls, value: object) -> object:
        # `blueGreen:` with nothing after it chooses the strategy with its defaults (and `canary:` must then
        # report its missing steps), rather than reading as "not chosen".
        return {} if value is None else value
