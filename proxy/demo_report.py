"""The demo's printed scorecard: per-variant counts, shares, error rates, latency quantiles, accuracy.

Usage: code = print_scorecard(tally, elapsed_s, args, outcome_counters)
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.demo import Tally


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of `values` (0 for an empty list)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def print_scorecard(
    tally: Tally, elapsed: float, args: argparse.Namespace, counters: dict[str, float]
) -> int:
    """Print the table and the checks; 0 when the split, stickiness and the outcome invariant hold."""
    total = sum(len(v) for v in tally.latencies.values())
    print(
        f"\n{total} responses in {elapsed:.1f}s ({total / elapsed:.0f} req/s), "
        f"{tally.failed} connection failures\n"
    )
    print(
        f"{'variant':<10} {'requests':>8} {'share':>7} {'errors':>7} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'p99 ms':>7} {'accuracy':>8}"
    )
    for variant in sorted(tally.latencies):
        lat = tally.latencies[variant]
        n = len(lat)
        ok = n - tally.errors[variant]
        acc = tally.correct[variant] / ok if ok else 0.0
        print(
            f"{variant:<10} {n:>8} {100 * n / total:>6.1f}% {100 * tally.errors[variant] / n:>6.2f}% "
            f"{quantile(lat, 0.5):>7.2f} {quantile(lat, 0.95):>7.2f} {quantile(lat, 0.99):>7.2f} {acc:>8.3f}"
        )
    switched = sum(1 for variants in tally.user_variants.values() if len(variants) > 1)
    print(
        f"\nusers: {len(tally.user_variants)} seen, {switched} saw more than one variant (sticky: expect 0)"
    )
    produced = counters.get("outrider_outcomes_produced_total", 0.0)
    stored = counters.get("outrider_outcomes_stored_total", 0.0)
    pending = counters.get("outrider_outcomes_pending", 0.0)
    dropped = sum(v for k, v in counters.items() if k.startswith("outrider_outcomes_dropped_total"))
    print(
        f"outcomes: produced {produced:.0f} = stored {stored:.0f} + pending {pending:.0f} "
        f"+ dropped {dropped:.0f}"
    )
    users_share = sum(1 for v in tally.user_variants.values() if "candidate" in v) / max(
        1, len(tally.user_variants)
    )
    print(f"users on the candidate: {100 * users_share:.1f}% (configured {args.canary:g}%)")
    healthy = (
        switched == 0 and produced == stored + pending + dropped and produced == total and tally.failed == 0
    )
    print("demo: OK" if healthy else "demo: FAILED checks above")
    return 0 if healthy else 1
