"""The `none` comparison kind: shadows are mirrored for their latency and errors only, answers not compared.

Usage: `NoComparison()(primary, shadow)` is always `Comparison(agree=None)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from shadow.compare.answer import Answer
from shadow.compare.base import Comparison


@dataclass(frozen=True, slots=True)
class NoComparison:
    """Compares nothing: agree is None, no rows, and no detail (not comparing is not an error)."""

    def __call__(self, primary: Answer | bytes, shadow: Answer | bytes) -> Comparison:
        """Ignore both answers."""
        return Comparison(agree=None)
