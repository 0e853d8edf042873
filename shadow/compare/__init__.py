"""Comparators: pure functions that judge a shadow's answer against the primary's answer to the same input.

Usage: `comparison = comparator("oip-top1")(primary_body, shadow_body)`; `comparison.to_json()` gives the
comparison fields of the outcome record's `shadows` entry (docs/design.md).
"""

from shadow.compare.base import Comparator, Comparison, comparator

__all__ = ["Comparator", "Comparison", "comparator"]
