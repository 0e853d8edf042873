"""The `oip-top1` comparison kind: does the shadow pick the same top class as the primary, row by row?

Usage: `OipTop1(output="probabilities")(primary, shadow)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shadow.compare.base import Comparison, not_comparable
from shadow.compare.oip import NotComparable, check_output_name, differences, output_pair


@dataclass(frozen=True, slots=True)
class OipTop1:
    """Compares the argmax of each row of an OIP output of shape [rows, classes].

    Ties go to the lowest index (NumPy's argmax), in both answers alike. The score differences are
    reported too (`max_abs_diff`, `max_rel_diff`), but only the top classes decide `agree`.
    """

    output: str | None = None
    """Name of the output to compare; None: the primary's first output."""

    def __post_init__(self) -> None:
        check_output_name(self.output)

    def __call__(self, primary: bytes, shadow: bytes) -> Comparison:
        """Compare the top class of every row."""
        try:
            a, b = output_pair(primary, shadow, self.output)
            if a.ndim != 2:
                raise NotComparable(f"oip-top1 needs an output of shape [rows, classes], not {list(a.shape)}")
            if a.shape[0] == 0 or a.shape[1] == 0:
                raise NotComparable(f"output has no rows or no classes: {list(a.shape)}")
        except NotComparable as why:
            return not_comparable(str(why))
        same = np.argmax(a, axis=1) == np.argmax(b, axis=1)
        abs_diff, rel_diff = differences(a, b)
        return Comparison(
            agree=bool(same.all()),
            rows=len(same),
            rows_agree=int(same.sum()),
            max_abs_diff=float(abs_diff.max()),
            max_rel_diff=float(rel_diff.max()),
        )
