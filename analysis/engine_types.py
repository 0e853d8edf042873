"""How much data one comparison has (records, units, duration): shared by the per-request and unit paths.

Usage: `Exposure(n_stable, n_candidate).as_json()`
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from analysis.metrics_eval import finite


@dataclass(frozen=True, slots=True)
class Exposure:
    """How much data one comparison has: records, units, and how long."""

    n_stable: int
    n_candidate: int
    unit: Literal["request", "unit"] = "request"
    units_stable: int = 0
    units_candidate: int = 0
    effective_stable: float = 0.0
    effective_candidate: float = 0.0
    capped: tuple[int, int] = (0, 0)
    duration_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        """The snapshot's counts."""
        return {
            "unit_of_analysis": self.unit,
            "n_stable": self.n_stable,
            "n_candidate": self.n_candidate,
            "units": {"stable": self.units_stable, "candidate": self.units_candidate},
            "effective_units": {
                "stable": finite(self.effective_stable),
                "candidate": finite(self.effective_candidate),
            },
            "capped": {"stable": self.capped[0], "candidate": self.capped[1]},
            "duration_s": finite(self.duration_s),
        }
