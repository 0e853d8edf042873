"""The result of comparing two answers, the comparator interface, and the registry of comparison kinds.

Usage: `compare = comparator("oip-numeric", atol=1e-5)`; `compare(primary, shadow).to_json()`, where each
answer is an `Answer(body, headers, max_bytes)` or a bare body.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shadow.compare.answer import Answer


@dataclass(frozen=True, slots=True)
class Comparison:
    """What one comparison of a shadow's answer with the primary's found.

    `agree` is None when the answers could not be compared (or nothing was compared); `detail` then says why.
    """

    agree: bool | None
    """Whether the shadow agrees with the primary; None: not comparable."""
    rows: int = 0
    """Rows (batch items) compared."""
    rows_agree: int = 0
    """Rows on which the shadow agrees with the primary."""
    max_abs_diff: float | None = None
    """Largest |primary − shadow| over the compared values (inf if the difference overflows)."""
    max_rel_diff: float | None = None
    """Largest |primary − shadow| / max(|primary|, |shadow|, 1e-12)."""
    exceed: bool | None = None
    """Numeric comparisons: whether any difference is above the tolerance."""
    detail: str | None = None
    """Why the answers were not compared (or how they were compared instead)."""
    overlap: float | None = None
    """`text`: token-overlap F1 of the two completion texts (0..1)."""

    def to_json(self) -> dict[str, object]:
        """The non-None fields, named as the comparison fields of an outcome record's `shadows` entry."""
        fields: dict[str, object] = {
            "agree": self.agree,
            "rows": self.rows,
            "rows_agree": self.rows_agree,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "exceed": self.exceed,
            "compare_error": self.detail,
            "overlap": self.overlap,
        }
        return {name: value for name, value in fields.items() if value is not None}


def not_comparable(detail: str) -> Comparison:
    """A comparison that compared nothing, because of `detail`."""
    return Comparison(agree=None, detail=detail)


class Comparator(Protocol):
    """Compares a shadow's answer with the primary's answer to the same request.

    An answer is an `Answer` (body and the headers that say how to read it) or a bare body (no headers)."""

    def __call__(self, primary: Answer | bytes, shadow: Answer | bytes) -> Comparison:
        """Compare the two answers; never raises on malformed answers (the result says why instead)."""
        ...


def comparator(kind: str, **options: object) -> Comparator:
    """The comparator for a comparison `kind` (`oip-top1`, `oip-numeric`, `json-exact`, `none`).

    Raises ValueError for an unknown kind, an option the kind does not take, or an invalid option value.
    """
    # Imported here rather than at the top: every comparator module imports `Comparison` from this one.
    from shadow.compare import json_exact, none, oip_numeric, oip_top1

    kinds: dict[str, Callable[..., Comparator]] = {
        "oip-top1": oip_top1.OipTop1,
        "oip-numeric": oip_numeric.OipNumeric,
        "json-exact": json_exact.JsonExact,
        "none": none.NoComparison,
    }
    from shadow.compare import text as text_kind

    kinds["text"] = text_kind.TextCompare
    factory = kinds.get(kind)
    if factory is None:
        raise ValueError(f"unknown comparison kind {kind!r}; known kinds: {', '.join(kinds)}")
    # Checked only when given: the mirror filter may call this per request, mostly without options.
    unknown = sorted(set(options) - set(inspect.signature(factory).parameters)) if options else []
    if unknown:
        raise ValueError(f"comparison kind {kind!r} takes no option {', '.join(map(repr, unknown))}")
    return factory(**options)
