"""The engine on sticky traffic (unit-level analysis): `python -m analysis.stats_bench_units [--runs 200]`.

Also printed by `python -m analysis.stats_bench` (`--only units` for this section alone). Each row simulates
whole experiments with `analysis.simulate_units.run_units` (users from `analysis.populations`, the real
`Judge`, a look every 1,000 requests) and prints Markdown: the share of runs rolled back / promoted /
inconclusive / with an SRM hold at some look (each ± its standard error), the median records (both arms)
and distinct users to a rollback and to a promotion, and, for the decisions that are wrong in that row, the
check "rate ≤ α + 3·SE" with SE = √(α(1 − α)/runs) (α = 0.05 for decisions, α_srm = 0.01 for SRM holds,
which must stay rare in every row: hashing makes units' first assignments exact Bernoulli draws).

Settings: 10% canary (`CanaryStrategy((10, 100))`, promotion at the 10% step), K = 3 default guardrails
(error_rate ×1.2, latency_gmean ×1.05, latency_p99 ×1.10; harm margins 1.0 / 1.05 / 1.10; error floor
0.001), maxRequests 35,000 candidate records, `unit: header:x-user-id` unless the row says per request;
every other setting is outrider's default. Seeds 0 … runs − 1 in every row, so rows of one population share
their users and arrival order (common random numbers). Seeded: the same command prints the same numbers.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from analysis.policy import DEFAULT_ERROR_FLOOR
from analysis.populations import HEAVY, MILD, PARETO, Population, Scenario
from analysis.simulate_units import UnitOutcome, bench_experiment, run_units
from experiments.model import Experiment

ALPHA = 0.05
SRM_ALPHA = 0.01
DEFAULT_RUNS = 200
"""Runs per row by default: all rows take ≈ 16 min on 2 idle cores (0.1–0.5 s per run and process), 24 min
measured on a shared machine; the whole `make stats-bench` 20 / 29 min."""
THREE_ARMS = {"stable": 50.0, "c1": 25.0, "c2": 25.0}
SHADOWING = 200_000


@dataclass(frozen=True, slots=True)
class UnitRow:
    """One bench row: who sends traffic, the truth, and which decisions would be wrong."""

    name: str
    pop: Population
    scenario: Scenario = field(default_factory=Scenario)
    false: tuple[str, ...] = ()
    """Decisions that are false in this row (ROLLBACK and/or PROMOTE): each is checked against α + 3·SE."""
    target: str = ""
    three_arms: bool = False

    def experiment(self) -> Experiment:
        """The experiment this row runs (sticky unless the scenario randomises per request)."""
        return bench_experiment(sticky=self.scenario.sticky, arms=THREE_ARMS if self.three_arms else None)


ROLLBACK, PROMOTE, BOTH = ("ROLLBACK",), ("PROMOTE",), ("PROMOTE", "ROLLBACK")
AT_ERROR_MARGIN = Scenario(error_mult=1.2, error_add=DEFAULT_ERROR_FLOOR)
"""The non-inferiority null's boundary with the default floor: p_B = 1.2·p_A + 0.001 for every user."""
UNIT_ROWS: tuple[UnitRow, ...] = (
    UnitRow("A/A heavy", HEAVY, false=ROLLBACK, target="rollback ≤ 0.3%; inconclusive ≈ 95%"),
    UnitRow("A/A mild", MILD, false=ROLLBACK, target="rollback ≤ 0.3%; promoted 69.7%"),
    UnitRow("A/A Pareto-rate", PARETO, false=ROLLBACK, target="rollback ≤ 0.3%"),
    UnitRow("A/A per request (heavy users)", HEAVY, Scenario(sticky=False), ROLLBACK, "rollback ≤ 0.3%"),
    UnitRow("errors at the margin (×1.2 + 0.1 pp), heavy", HEAVY, AT_ERROR_MARGIN, PROMOTE, "1.0% promoted"),
    UnitRow("errors at the margin (×1.2 + 0.1 pp), mild", MILD, AT_ERROR_MARGIN, PROMOTE, "2.5% promoted"),
    UnitRow("errors ×1.2 (inside the 0.1 pp floor), mild", MILD, Scenario(error_mult=1.2), (), "not a null"),
    UnitRow("latency ×1.05 (at the latency margin), mild", MILD, Scenario(latency_mult=1.05), BOTH, "0.0%"),
    UnitRow("errors ×2, mild", MILD, Scenario(error_mult=2.0), PROMOTE, "100% rollback at 25k (19k units)"),
    UnitRow("errors ×2, heavy", HEAVY, Scenario(error_mult=2.0), PROMOTE, "85% rollback at 55k (12k units)"),
    UnitRow("latency +10%, mild", MILD, Scenario(latency_mult=1.10), PROMOTE, "rollback at 16k"),
    UnitRow("latency +10%, heavy", HEAVY, Scenario(latency_mult=1.10), PROMOTE, "30% rollback"),
    UnitRow("errors ×0.8, mild", MILD, Scenario(error_mult=0.8), ROLLBACK, "94% promoted"),
    UnitRow("latency +3% (5% margin), mild", MILD, Scenario(latency_mult=1.03), ROLLBACK, "0% rolled back"),
    UnitRow("latency +1% (5% margin), mild", MILD, Scenario(latency_mult=1.01), ROLLBACK, "0% rolled back"),
    UnitRow("three arms 50/25/25 A/A, heavy", HEAVY, false=ROLLBACK, target="SRM ≤ 1.0%", three_arms=True),
    UnitRow(
        f"A/A after {SHADOWING // 1000}k shadowing requests at 0.75× latency, mild",
        MILD,
        Scenario(shadow_requests=SHADOWING, shadow_latency=0.75),
        ROLLBACK,
        "no rollback (as A/A mild)",
    ),
    UnitRow("zero errors on both arms, mild", MILD, Scenario(base_error=0.0), ROLLBACK, "promoted"),
    UnitRow(
        f"error floor boundary p_B = 1.2·p_A + {DEFAULT_ERROR_FLOOR:g} at p_A = 0, mild",
        MILD,
        Scenario(base_error=0.0, error_add=DEFAULT_ERROR_FLOOR),
        PROMOTE,
        "promoted ≤ α",
    ),
)


def run_row(row: UnitRow, seed: int) -> UnitOutcome:
    """One run of `row` (top level: picklable for the worker pool)."""
    return run_units(row.experiment(), row.pop, row.scenario, seed)


def _pct(p: float, runs: int) -> str:
    return f"{p:.1%} ± {np.sqrt(p * (1 - p) / runs):.1%}"


def _bound(alpha: float, runs: int) -> float:
    return alpha + 3.0 * float(np.sqrt(alpha * (1.0 - alpha) / runs))


def _median_to(outs: Sequence[UnitOutcome], kind: str) -> str:
    hit = [o for o in outs if o.kind == kind]
    if not hit:
        return "–"
    records = np.median([o.total for o in hit]) / 1000
    units = np.median([o.units for o in hit]) / 1000
    return f"{records:.1f}k / {units:.1f}k"


def checks(row: UnitRow, outs: Sequence[UnitOutcome]) -> tuple[str, bool]:
    """The α + 3·SE checks of a row (its false decisions, and SRM holds), and whether all pass."""
    runs = len(outs)
    parts, ok = [], True
    for kind in row.false:
        rate = float(np.mean([o.kind == kind for o in outs]))
        passed = rate <= _bound(ALPHA, runs)
        ok &= passed
        parts.append(f"{'✓' if passed else '✗'} {kind.lower()} {rate:.1%} ≤ {_bound(ALPHA, runs):.1%}")
    srm = float(np.mean([o.srm for o in outs]))
    passed = srm <= _bound(SRM_ALPHA, runs)
    ok &= passed
    parts.append(f"{'✓' if passed else '✗'} SRM {srm:.1%} ≤ {_bound(SRM_ALPHA, runs):.1%}")
    return "; ".join(parts), ok


def row_line(row: UnitRow, outs: Sequence[UnitOutcome], seconds: float) -> str:
    """One Markdown table row."""
    runs = len(outs)
    share = {k: float(np.mean([o.kind == k for o in outs])) for k in ("ROLLBACK", "PROMOTE", "INCONCLUSIVE")}
    srm = float(np.mean([o.srm for o in outs]))
    other = sum(o.kind not in share for o in outs)
    name = row.name + (f" ({other} runs hit the request limit)" if other else "")
    check, _ = checks(row, outs)
    by = Counter(m for o in outs if o.kind == "ROLLBACK" for m in o.harmful)
    why = f" ({', '.join(f'{m} {n}' for m, n in sorted(by.items()))})" if by else ""
    return (
        f"| {name} | {runs} | {_pct(share['ROLLBACK'], runs)}{why} | {_pct(share['PROMOTE'], runs)} "
        f"| {_pct(share['INCONCLUSIVE'], runs)} | {_pct(srm, runs)} | {_median_to(outs, 'ROLLBACK')} "
        f"| {_median_to(outs, 'PROMOTE')} | {check} | {row.target} | {seconds:.0f} s |"
    )


HEADER = (
    "| row | runs | rolled back | promoted | inconclusive | SRM hold (ever) | median records / users to "
    "rollback | median records / users to promotion | false decisions (≤ α + 3·SE) | target | time |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
)


def unit_table(runs: int, workers: int, rows: Sequence[UnitRow] = UNIT_ROWS) -> list[str]:
    """The table: one line per row, `runs` runs each on `workers` processes."""
    lines = list(HEADER)
    with ProcessPoolExecutor(workers) as pool:
        for row in rows:
            t0 = time.perf_counter()
            outs = list(pool.map(partial(run_row, row), range(runs), chunksize=max(1, runs // (8 * workers))))
            lines.append(row_line(row, outs, time.perf_counter() - t0))
    return lines


def select(patterns: Sequence[str]) -> tuple[UnitRow, ...]:
    """The rows whose name contains any of `patterns` (case-insensitive); all rows when none is given."""
    if not patterns:
        return UNIT_ROWS
    chosen = tuple(r for r in UNIT_ROWS if any(p.lower() in r.name.lower() for p in patterns))
    if not chosen:
        raise SystemExit(f"no unit row matches {list(patterns)}; rows: {[r.name for r in UNIT_ROWS]}")
    return chosen


def section(runs: int, workers: int, patterns: Sequence[str] = ()) -> list[str]:
    """The unit-level section of the stats bench (Markdown lines)."""
    notes = [
        "",
        "Population (users): heavy = 20k, lognormal(1.5) rates; mild = 100k, lognormal(1.0); Pareto-rate = "
        "20k, Pareto(1.5). Every user: Beta(0.2, 19.8) error propensity (mean 1%), N(0, 0.3²) log-latency "
        "offset, lognormal request noise (median 50 ms, σ 0.5); Poisson arrivals with a shared time profile.",
        f"10% canary, K = 3, maxRequests {35_000:,} candidate records, a look every 1,000 requests, "
        f"seeds 0…{runs - 1} (the same users in every row of a population). Records = both arms; users = "
        "distinct units seen; rolled back (metric n): runs in which that guardrail's harm test fired. "
        f"SE of a false-decision rate = √(α(1 − α)/runs) at α = {ALPHA} ({SRM_ALPHA} for SRM).",
    ]
    return [*unit_table(runs, workers, select(patterns)), *notes]


def main(argv: list[str] | None = None) -> None:
    """Run the unit-level rows and print Markdown."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="runs per row")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rows", nargs="*", default=[], help="only rows whose name contains one of these")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    print(
        "\n### Sticky assignment: unit-level analysis\n",
        *section(args.runs, args.workers, args.rows),
        sep="\n",
    )
    print(f"\n({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
