"""Sticky assignment: `bucket = hash(salt, unit) mod 10000`; variants own contiguous bucket ranges.

Usage: table = TrafficTable.build(exp, {"stable": 90, "candidate": 10}); variant, p = table.pick(bucket)

Ranges are laid out in a fixed order — non-stable serving variants first (config order), the stable variant
last — so raising a candidate's weight only moves units from stable to that candidate, never back and forth.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from experiments.model import Experiment, Variant

BUCKETS = 10_000


def bucket_of(salt: str, key: str) -> int:
    """The unit's bucket in [0, 10000): stable for a (salt, key) pair, uniform over keys."""
    digest = hashlib.blake2b(
        salt.encode() + b"\x00" + key.encode("utf-8", "surrogateescape"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def unit_hash(key: str) -> str:
    """What outcome records store instead of the raw key (independent of the salt, for per-unit analysis)."""
    return hashlib.blake2b(b"unit\x00" + key.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def layout_order(experiment: Experiment) -> tuple[Variant, ...]:
    """Serving variants in bucket order: every non-stable one first, the stable one last."""
    serving = experiment.serving
    return tuple(v for v in serving if v.role != "stable") + tuple(v for v in serving if v.role == "stable")


@dataclass(frozen=True, slots=True)
class TrafficTable:
    """Bucket ranges of the serving variants for one set of weights."""

    bounds: tuple[int, ...]
    """Exclusive upper bucket of each variant's range, increasing, the last is 10000."""
    variants: tuple[Variant, ...]
    probabilities: tuple[float, ...]

    @classmethod
    def build(cls, experiment: Experiment, weights: Mapping[str, float]) -> TrafficTable:
        """Lay out `weights` (percent per serving variant; missing = 0) over the buckets."""
        order = layout_order(experiment)
        bounds: list[int] = []
        probs: list[float] = []
        upper = 0
        for variant in order:
            share = round(float(weights.get(variant.name, 0.0)) * BUCKETS / 100)
            upper = min(BUCKETS, upper + share)
            bounds.append(upper)
        if bounds:
            bounds[-1] = BUCKETS  # rounding slack goes to the stable variant
        lower = 0
        for upper in bounds:
            probs.append((upper - lower) / BUCKETS)
            lower = upper
        return cls(tuple(bounds), order, tuple(probs))

    def pick(self, bucket: int) -> tuple[Variant, float]:
        """The variant owning `bucket`, with the probability of landing in its range."""
        i = bisect.bisect_right(self.bounds, bucket)
        return self.variants[i], self.probabilities[i]

    def weights(self) -> dict[str, float]:
        """Percent per variant as laid out (after rounding to whole buckets)."""
        return {v.name: p * 100 for v, p in zip(self.variants, self.probabilities, strict=True)}
