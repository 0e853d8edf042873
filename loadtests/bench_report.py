"""From the runs of the benchmark to medians, ratios, the printed tables and bench-out/bench.json.

Usage: cells = summarize(runs); print(render_text(cells, seconds, rounds)); write_json(path, runs, cells, {})
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from loadtests.bench_fleet import CASES, TARGETS
from loadtests.bench_load import LOADS
from loadtests.bench_parse import LoadResult

CASE_TITLES = {
    "model": "model-server upstream (digits fp32)",
    "fixed": "fixed-body upstream (nginx `return 200`)",
}
Key = tuple[str, str, str]
"""(case, load, target)"""


@dataclass(frozen=True, slots=True)
class Run:
    """One measured load run of one target in one round."""

    round: int
    case: str
    target: str
    load: str
    result: LoadResult


@dataclass(frozen=True, slots=True)
class Cell:
    """Medians over the rounds of one (case, load, target); `errors` is the total over the rounds.

    The `*_range` fields hold the lowest and highest round, to show how noisy the machine was.
    """

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float | None
    errors: int
    rounds: int
    rps_range: tuple[float, float]
    cpu_range: tuple[float, float] | None


def summarize(runs: Iterable[Run]) -> dict[Key, Cell]:
    """Median of each figure over the rounds."""
    grouped: dict[Key, list[LoadResult]] = defaultdict(list)
    for run in runs:
        grouped[(run.case, run.load, run.target)].append(run.result)
    cells: dict[Key, Cell] = {}
    for key, results in grouped.items():
        cpu = [r.cpu_us_per_request for r in results if r.cpu_us_per_request is not None]
        rps = [r.rps for r in results]
        cells[key] = Cell(
            rps=statistics.median(rps),
            p50_ms=statistics.median(r.p50_ms for r in results),
            p99_ms=statistics.median(r.p99_ms for r in results),
            cpu_us_per_request=statistics.median(cpu) if cpu else None,
            errors=sum(r.errors for r in results),
            rounds=len(results),
            rps_range=(min(rps), max(rps)),
            cpu_range=(min(cpu), max(cpu)) if cpu else None,
        )
    return cells


def ratio(cells: dict[Key, Cell], case: str, load: str, num: str, den: str, field: str) -> float | None:
    """`field` of target `num` over that of target `den` (None where either is missing)."""
    a, b = cells.get((case, load, num)), cells.get((case, load, den))
    if a is None or b is None:
        return None
    x, y = getattr(a, field), getattr(b, field)
    return None if x is None or y is None or y == 0 else float(x) / float(y)


def ratios(cells: dict[Key, Cell], case: str, load: str) -> dict[str, float | None]:
    """Outrider over direct and over nginx (throughput, p50, p99); its CPU over nginx's, HAProxy's and the
    bare forwarder's; and what JWT verification plus a rate limit add (outrider+auth over outrider)."""
    out: dict[str, float | None] = {}
    for den in ("direct", "nginx"):
        for field, label in (("rps", "throughput"), ("p50_ms", "p50"), ("p99_ms", "p99")):
            out[f"outrider/{den} {label}"] = ratio(cells, case, load, "outrider", den, field)
    for den in ("nginx", "haproxy", "bare"):
        out[f"outrider/{den} cpu"] = ratio(cells, case, load, "outrider", den, "cpu_us_per_request")
    out["outrider+auth/outrider cpu"] = ratio(
        cells, case, load, "outrider+auth", "outrider", "cpu_us_per_request"
    )
    return out


def fmt(value: float | None, spec: str = ",.1f", suffix: str = "") -> str:
    """A figure, or a dash where there is none."""
    return "–" if value is None else f"{value:{spec}}{suffix}"


def span(values: tuple[float, float] | None, spec: str) -> str:
    """`low–high`, or a dash."""
    return "–" if values is None else f"{values[0]:{spec}}–{values[1]:{spec}}"


Row = Callable[[list[str]], str]


def table(cells: dict[Key, Cell], case: str, load: str, row: Row) -> list[str]:
    """Header and one row per target, each formatted by `row`."""
    lines = [row(["target", "req/s", "(min–max)", "p50 ms", "p99 ms", "CPU µs/req", "(min–max)", "errors"])]
    for target in TARGETS:
        cell = cells.get((case, load, target))
        if cell is None:
            continue
        rps = [fmt(cell.rps), span(cell.rps_range, ",.0f")]
        latency = [fmt(cell.p50_ms, ".2f"), fmt(cell.p99_ms, ".2f")]
        cpu = [fmt(cell.cpu_us_per_request, ",.0f"), span(cell.cpu_range, ",.0f")]
        lines.append(row([target, *rps, *latency, *cpu, str(cell.errors)]))
    return lines


def ratio_line(cells: dict[Key, Cell], case: str, load: str) -> str:
    """`outrider/direct throughput 0.41×, ...` on one line."""
    return ", ".join(f"{name} {fmt(value, '.2f', '×')}" for name, value in ratios(cells, case, load).items())


def render_text(cells: dict[Key, Cell], seconds: float, rounds: int) -> str:
    """The tables for the terminal."""

    def row(columns: list[str]) -> str:
        return f"  {columns[0]:<10}" + "".join(f"{c:>14}" for c in columns[1:])

    out: list[str] = []
    for case in CASES:
        for load in LOADS:
            out.append(f"\n{CASE_TITLES[case]} — {load.name}, {load.kind}; medians of {rounds} rounds")
            out.append(f"  {load.command(seconds)}")
            out += table(cells, case, load.name, row)
            out.append("  " + ratio_line(cells, case, load.name))
    return "\n".join(out)


def write_json(path: Path, runs: list[Run], cells: dict[Key, Cell], extra: dict[str, Any]) -> None:
    """Every run, the medians and the ratios, plus `extra` (machine, settings, profile)."""
    doc = {
        **extra,
        "runs": [dataclasses.asdict(r) for r in runs],
        "medians": [
            {"case": c, "load": ld, "target": t, **dataclasses.asdict(cell)}
            for (c, ld, t), cell in sorted(cells.items())
        ],
        "ratios": {f"{c}/{ld.name}": ratios(cells, c, ld.name) for c in CASES for ld in LOADS},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
