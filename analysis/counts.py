"""Event counts per arm, grouped by the routing probability ρ (the sufficient statistic of event attribution).

Usage: `counts = add_events(RhoCounts.empty(), rho=rho[err], in_b=in_b[err])`

Given that an event happened at a request routed to B with probability ρ, which arm it came from depends only
on ρ and the effect, so counts per distinct ρ summarise a stream exactly and any batching gives the same
state. Events at ρ = 0 or 1 carry no information about the arms and are kept only in the totals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

RHO_DECIMALS = 9
"""ρ is rounded before grouping so that 1 - 0.9 and 0.1 fall in one group (assignment uses 1e-4 steps)."""


def _frozen(x: npt.ArrayLike) -> Array:
    out = np.asarray(x, dtype=np.float64)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True)
class RhoCounts:
    """Events on A (stable) and B (candidate) per distinct ρ in (0, 1), plus totals over all ρ."""

    rho: Array
    a: Array
    b: Array
    total_a: int = 0
    total_b: int = 0

    @staticmethod
    def empty() -> RhoCounts:
        """No events yet."""
        z = _frozen(np.zeros(0))
        return RhoCounts(z, z, z)

    @property
    def informative(self) -> float:
        """Events at 0 < ρ < 1 (those that can tell the arms apart)."""
        return float(self.a.sum() + self.b.sum())


def add_events(counts: RhoCounts, rho: Array, in_b: BoolArray) -> RhoCounts:
    """`counts` plus one event per element (its ρ = P(routed to B), and whether it was on B)."""
    rho = np.asarray(rho, dtype=np.float64)
    in_b = np.asarray(in_b, dtype=np.bool_)
    n_b = int(np.count_nonzero(in_b))
    total_a, total_b = counts.total_a + in_b.size - n_b, counts.total_b + n_b
    if rho.size and rho.min() == rho.max():  # one split in the batch (the usual case): no sort needed
        keys, a, b = np.round(rho[:1], RHO_DECIMALS), np.array([in_b.size - n_b]), np.array([n_b])
    else:
        keys, inverse = np.unique(np.round(rho, RHO_DECIMALS), return_inverse=True)
        a = np.bincount(inverse, weights=~in_b, minlength=keys.size)
        b = np.bincount(inverse, weights=in_b, minlength=keys.size)
    keep = (keys > 0.0) & (keys < 1.0)
    return _merge(counts, keys[keep], a[keep], b[keep], total_a, total_b)


def _merge(
    counts: RhoCounts, keys: Array, a: npt.ArrayLike, b: npt.ArrayLike, total_a: int, total_b: int
) -> RhoCounts:
    if keys.size == 1 and counts.rho.size and np.any(counts.rho == keys[0]):
        i = int(np.flatnonzero(counts.rho == keys[0])[0])
        new_a, new_b = counts.a.copy(), counts.b.copy()
        new_a[i] += np.asarray(a, dtype=np.float64)[0]
        new_b[i] += np.asarray(b, dtype=np.float64)[0]
        return RhoCounts(counts.rho, _frozen(new_a), _frozen(new_b), total_a, total_b)
    all_keys, inverse = np.unique(np.concatenate([counts.rho, keys]), return_inverse=True)
    weights_a = np.concatenate([counts.a, np.asarray(a, dtype=np.float64)])
    weights_b = np.concatenate([counts.b, np.asarray(b, dtype=np.float64)])
    sum_a = np.bincount(inverse, weights=weights_a, minlength=all_keys.size)
    sum_b = np.bincount(inverse, weights=weights_b, minlength=all_keys.size)
    return RhoCounts(_frozen(all_keys), _frozen(sum_a), _frozen(sum_b), total_a, total_b)
