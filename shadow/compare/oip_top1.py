"""The `oip-top1` comparison kind: does the shadow give the same answer as the primary, row by row?

Usage: `OipTop1(output="probabilities")(primary, shadow)`; `OipTop1(label_output="predict")(primary, shadow)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from shadow.compare.answer import Answer
from shadow.compare.base import Comparison, not_comparable
from shadow.compare.oip import NotComparable, Tensor, check_output_name, differences, tensor_pair

LABEL_DATATYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "BYTES", "BOOL"}
)
"""Datatypes that hold labels (class ids, class names, flags), never scores to take the argmax of."""


@dataclass(frozen=True, slots=True)
class OipTop1:
    """Compares each row's answer: the top class of a score output, or the label of a label output.

    An output holds labels — and each row's label(s) are compared by equality — when its datatype (on either
    side) is an integer type, BYTES or BOOL, when it has one value per row (shape [rows] or [rows, ..., 1]),
    or when the experiment names it in `label_output`. Any other output holds scores of shape [rows, classes]:
    each row's top class is its argmax, ties going to the lowest index (NumPy's argmax) in both answers alike;
    the score differences are reported too (`max_abs_diff`, `max_rel_diff`), but only the top classes decide
    `agree`. Labels are exact values: 3 equals 3.0, the text "3" equals neither, and a BYTES output cannot be
    compared with a numeric one.
    """

    output: str | None = None
    """Name of the output to compare; None: `label_output` if given, else the primary's first output."""
    label_output: str | None = None
    """Name of an output that holds labels whatever its datatype and shape (e.g. float class ids)."""

    def __post_init__(self) -> None:
        check_output_name(self.output)
        check_output_name(self.label_output, "label_output")
        if self.output is not None and self.label_output is not None and self.output != self.label_output:
            raise ValueError(
                f"label_output {self.label_output!r} is not the output compared ({self.output!r}): "
                "leave output out or give both the same name"
            )

    def __call__(self, primary: Answer | bytes, shadow: Answer | bytes) -> Comparison:
        """Compare the answer of every row."""
        try:
            a, b = tensor_pair(primary, shadow, self.output or self.label_output)
            if self._holds_labels(a, b):
                return _same_labels(a, b)
            if len(a.shape) != 2:
                raise NotComparable(f"oip-top1 needs an output of shape [rows, classes], not {list(a.shape)}")
            if a.shape[0] == 0 or a.shape[1] == 0:
                raise NotComparable(f"output has no rows or no classes: {list(a.shape)}")
            scores_a, scores_b = a.numbers(), b.numbers()
        except NotComparable as why:
            return not_comparable(str(why))
        same = np.argmax(scores_a, axis=1) == np.argmax(scores_b, axis=1)
        abs_diff, rel_diff = differences(scores_a, scores_b)
        return Comparison(
            agree=bool(same.all()),
            rows=len(same),
            rows_agree=int(same.sum()),
            max_abs_diff=float(abs_diff.max()),
            max_rel_diff=float(rel_diff.max()),
        )

    def _holds_labels(self, a: Tensor, b: Tensor) -> bool:
        return (
            a.name == self.label_output
            or a.datatype in LABEL_DATATYPES
            or b.datatype in LABEL_DATATYPES
            or len(a.shape) == 1
            or a.shape[-1:] == (1,)
        )


def _same_labels(a: Tensor, b: Tensor) -> Comparison:
    """Row by row: a row agrees when every label in it is equal."""
    if not a.shape or a.shape[0] == 0 or a.size == 0:
        raise NotComparable(f"label output has no rows or no values: {list(a.shape)}")
    if (a.datatype == "BYTES") != (b.datatype == "BYTES") and None not in (a.datatype, b.datatype):
        raise NotComparable(f"output datatypes differ: {a.datatype} vs {b.datatype}")
    rows = a.shape[0]
    equal = _equal(a, b).reshape(rows, -1).all(axis=1)
    return Comparison(agree=bool(equal.all()), rows=rows, rows_agree=int(equal.sum()))


def _equal(a: Tensor, b: Tensor) -> NDArray[np.bool_]:
    labels_a, labels_b = a.labels(), b.labels()
    # Element by element with Python's ==: exact for any integer (no float64 rounding above 2**53), and
    # never broadcast into a single True or False. A bool is a label of its own: true is not 1.
    return np.fromiter(
        (
            x == y and (type(x) is bool) == (type(y) is bool)
            for x, y in zip(labels_a.flat, labels_b.flat, strict=True)
        ),
        dtype=np.bool_,
        count=labels_a.size,
    )
