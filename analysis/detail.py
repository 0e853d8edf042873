"""Cheap looks carry the bounds of the last detailed one: estimates, e-values and verdicts are fresh at every
look, intervals (a bisection each, ~8 ms a look) at most a second old (analysis.verdict.Looker).

Usage: snapshot = carry_detail(fresh_snapshot, last_detailed_snapshot)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DETAIL_KEYS = ("ci_low", "ci_high")


def carry_detail(fresh: dict[str, Any], detailed: Mapping[str, Any]) -> dict[str, Any]:
    """`fresh` (a look without bounds) with those of the last look that had them, per metric, and
    `detail_records`, the record count they are from: estimates, e-values and verdicts now, intervals ≤ 1 s
    old."""
    out = {**fresh, "detail_records": detailed.get("detail_records")}
    if "metrics" in fresh:
        out["metrics"] = _carried(fresh["metrics"], detailed.get("metrics") or [])
    comparisons = fresh.get("comparisons")
    if isinstance(comparisons, dict):
        before = detailed.get("comparisons") or {}
        out["comparisons"] = {
            name: {
                **snap,
                "metrics": _carried(snap.get("metrics") or [], before.get(name, {}).get("metrics") or []),
            }
            for name, snap in comparisons.items()
        }
    return out


def _carried(fresh: list[dict[str, Any]], detailed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    known = {(m.get("name"), m.get("role")): m for m in detailed}
    out = []
    for m in fresh:
        old = known.get((m.get("name"), m.get("role")))
        out.append({**m, **{k: old.get(k) for k in DETAIL_KEYS}} if old is not None else m)
    return out
