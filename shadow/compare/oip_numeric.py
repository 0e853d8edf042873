"""The `oip-numeric` comparison kind: are the shadow's output values close to the primary's, element-wise?

Usage: `OipNumeric(atol=1e-5, rtol=1e-3)(primary, shadow)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from shadow.compare.answer import Answer
from shadow.compare.base import Comparison, not_comparable
from shadow.compare.oip import NotComparable, check_output_name, differences, output_pair


@dataclass(frozen=True, slots=True)
class OipNumeric:
    """Compares every value of an OIP output with `numpy.isclose(shadow, primary, rtol, atol)`.

    The primary is the reference: a value exceeds the tolerance when |p − s| > atol + rtol·|p|. A row
    agrees when all its values are within tolerance; the comparison agrees when every value is.
    """

    output: str | None = None
    """Name of the output to compare; None: the primary's first output."""
    atol: float = 1e-6
    """Absolute tolerance."""
    rtol: float = 1e-3
    """Tolerance relative to the primary's value."""

    def __post_init__(self) -> None:
        check_output_name(self.output)
        _check_tolerance("atol", self.atol)
        _check_tolerance("rtol", self.rtol)

    def __call__(self, primary: Answer | bytes, shadow: Answer | bytes) -> Comparison:
        """Compare the two outputs value by value."""
        try:
            a, b = output_pair(primary, shadow, self.output)
            if a.size == 0:
                raise NotComparable(f"output has no values: shape {list(a.shape)}")
        except NotComparable as why:
            return not_comparable(str(why))
        abs_diff, rel_diff = differences(a, b)
        close = abs_diff <= self.atol + self.rtol * np.abs(a)
        rows = a.shape[0] if a.ndim else 1
        row_close = close.reshape(rows, -1).all(axis=1)
        exceed = not bool(close.all())
        return Comparison(
            agree=not exceed,
            rows=rows,
            rows_agree=int(row_close.sum()),
            max_abs_diff=float(abs_diff.max()),
            max_rel_diff=float(rel_diff.max()),
            exceed=exceed,
        )


def _check_tolerance(name: str, value: object) -> None:
    # Options arrive from config untyped; a bool would silently act as 0 or 1.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
