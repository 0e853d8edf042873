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
    rho = np.asarray(np.round(np.asarray(rho, dtype=np.float64), RHO_DECIMALS), dtype=np.float64)
    in_b = np.asarray(in_b, dtype=np.bool_)
    total_b = counts.total_b + int(in_b.sum())
    total_a = counts.total_a + int(in_b.size - in_b.sum())
    keep = (rho > 0.0) & (rho < 1.0)
    rho, in_b = rho[keep], in_b[keep]
    if rho.size and rho.min() == rho.max():  # one split in the batch (the usual case): no sort needed
        rho_all = np.concatenate([counts.rho, rho[:1]])
        keys, first = np.unique(rho_all, return_inverse=True)
        inverse = np.concatenate([first[:-1], np.full(rho.size, first[-1])])
    else:
        keys, inverse = np.unique(np.concatenate([counts.rho, rho]), return_inverse=True)
    old = counts.rho.size
    n = keys.size
    a = np.bincount(inverse[:old], counts.a, n) + np.bincount(inverse[old:], (~in_b).astype(np.float64), n)
    b = np.bincount(inverse[:old], counts.b, n) + np.bincount(inverse[old:], in_b.astype(np.float64), n)
    return RhoCounts(_frozen(keys), _frozen(a), _frozen(b), total_a, total_b)
