"""Comparators: pure functions that judge a shadow's answer against the primary's answer to the same input.

Usage: `comparison = comparator("oip-top1")(Answer(primary_body, primary_headers), shadow_body)`;
`comparison.to_json()` gives the comparison fields of the outcome record's `shadows` entry (docs/design.md).
One comparison kind per module (`oip_top1`, `oip_numeric`, `json_exact`, `none`); `comparator` is the
registry.
"""

from shadow.compare.answer import Answer
from shadow.compare.base import Comparator, Comparison, comparator

__all__ = ["Answer", "Comparator", "Comparison", "comparator"]
