"""From the runs of `loadtests/bench_workers.py` to medians, the issue's ratios, the printed table and the
generated section of docs/benchmarks.md.

Usage: summary = summarize(samples); print(render_text(summary))
       update_doc(doc, render_markdown(summary, facts), BEGIN, END)
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loadtests.bench_parse import LoadResult

TARGETS = ("workers-1", "workers-2", "redis")
TITLES = {
    "workers-1": "`--workers 1` (SQLite)",
    "workers-2": "`--workers 2` (SQLite)",
    "redis": "`--workers 1 --store redis://…`",
}
GROUPS = ("outrider", "wrk", "nginx", "redis")
"""Process groups whose CPU is read around every run (redis-server is idle but in the redis runs); outrider's
`supervisor` (its first process, when it has workers) is read too, as a part of outrider's."""
CPU_RATIO_TARGET = 1.1
REDIS_ADDED_TARGET_US = 10.0
BEGIN = (
    "<!-- bench-workers:begin — written by `python -m loadtests.bench_workers` (and `make bench`); "
    "edits between the markers are overwritten -->"
)
END = "<!-- bench-workers:end -->"


@dataclass(frozen=True, slots=True)
class Sample:
    """One saturating run of one target: what wrk saw, the wall time, and CPU seconds by process group
    (`machine`: every core's busy time, whoever spent it)."""

    round: int
    target: str
    result: LoadResult
    wall_s: float
    cpu_s: dict[str, float] = field(default_factory=dict)

    def us_per_request(self, group: str) -> float:
        """CPU µs of `group` per completed request."""
        return self.cpu_s[group] / max(self.result.requests, 1) * 1e6

    def cores(self, group: str) -> float:
        """Cores `group` kept busy on average (`other`: the machine minus every measured group)."""
        if group == "other":
            return (self.cpu_s["machine"] - sum(self.cpu_s[g] for g in GROUPS)) / self.wall_s
        return self.cpu_s[group] / self.wall_s


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """Medians per target, and the ratios and differences the issue asks for (each also per round)."""
    by: dict[str, list[Sample]] = {t: [s for s in samples if s.target == t] for t in TARGETS}
    targets: dict[str, dict[str, Any]] = {}
    for name, runs in by.items():
        targets[name] = {
            "rps": _median(s.result.rps for s in runs),
            "rps_range": [min(s.result.rps for s in runs), max(s.result.rps for s in runs)],
            "p99_ms": _median(s.result.p99_ms for s in runs),
            "errors": sum(s.result.errors for s in runs),
            "us_per_request": {
                g: _median(s.us_per_request(g) for s in runs) for g in (*GROUPS, "supervisor")
            },
            "outrider_range": [
                min(s.us_per_request("outrider") for s in runs),
                max(s.us_per_request("outrider") for s in runs),
            ],
            "cores": {g: _median(s.cores(g) for s in runs) for g in (*GROUPS, "other", "machine")},
        }
    one, two, red = (sorted(by[t], key=lambda s: s.round) for t in TARGETS)
    pairs = list(zip(one, two, strict=True))
    added = [
        r.us_per_request("outrider") - o.us_per_request("outrider") for o, r in zip(one, red, strict=True)
    ]
    t1, t2, tr = (targets[t] for t in TARGETS)
    return {
        "rounds": len(one),
        "targets": targets,
        "workers_cpu_ratio": t2["us_per_request"]["outrider"] / t1["us_per_request"]["outrider"],
        "workers_cpu_ratio_rounds": [
            b.us_per_request("outrider") / a.us_per_request("outrider") for a, b in pairs
        ],
        "upstream_cpu_ratio_rounds": [
            b.us_per_request("nginx") / a.us_per_request("nginx") for a, b in pairs
        ],
        "workers_cpu_ratio_vs_upstream": _median(
            (b.us_per_request("outrider") / a.us_per_request("outrider"))
            / (b.us_per_request("nginx") / a.us_per_request("nginx"))
            for a, b in pairs
        ),
        "workers_rps_ratio": t2["rps"] / t1["rps"],
        "workers_rps_ratio_rounds": [b.result.rps / a.result.rps for a, b in pairs],
        "redis_added_us": tr["us_per_request"]["outrider"] - t1["us_per_request"]["outrider"],
        "redis_added_us_rounds": added,
        "redis_server_us": tr["us_per_request"]["redis"],
    }


def _range(values: list[float], spec: str) -> str:
    return ", ".join(format(v, spec) for v in values)


def verdicts(s: dict[str, Any]) -> list[str]:
    """The issue's two targets, each met or missed, in words."""
    ratio, added, server = s["workers_cpu_ratio"], s["redis_added_us"], s["redis_server_us"]
    met = "within" if ratio <= CPU_RATIO_TARGET else "misses"
    redis_met = "within" if added <= REDIS_ADDED_TARGET_US else "misses"
    return [
        f"CPU per request, `--workers 2` / `--workers 1`: {ratio:.2f}× (rounds: "
        f"{_range(s['workers_cpu_ratio_rounds'], '.2f')}) — {met} the {CPU_RATIO_TARGET}× target; "
        f"throughput {s['workers_rps_ratio']:.2f}× (rounds: {_range(s['workers_rps_ratio_rounds'], '.2f')}). "
        f"The upstream's CPU per request (nginx: the same work in both) changed "
        f"{_range(s['upstream_cpu_ratio_rounds'], '.2f')}× round by round, what sharing the cores costs "
        f"every process; outrider's ratio over the upstream's: {s['workers_cpu_ratio_vs_upstream']:.2f}×.",
        f"CPU per request the Redis store adds in outrider: {added:+.1f} µs (rounds: "
        f"{_range(s['redis_added_us_rounds'], '+.1f')}) — {redis_met} the ≤ {REDIS_ADDED_TARGET_US:g} µs "
        f"target; in redis-server: {server:.1f} µs; together {added + server:+.1f} µs.",
    ]


def _rows(s: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name in TARGETS:
        t = s["targets"][name]
        us, cores = t["us_per_request"], t["cores"]
        lo, hi = t["rps_range"]
        olo, ohi = t["outrider_range"]
        rows.append(
            [
                TITLES[name],
                f"{t['rps']:,.0f} ({lo:,.0f}–{hi:,.0f})",
                f"{t['p99_ms']:.2f}",
                f"**{us['outrider']:.1f}** ({olo:.1f}–{ohi:.1f})",
                f"{us['supervisor']:.1f}" if name == "workers-2" else "—",
                f"{us['wrk']:.1f}",
                f"{us['nginx']:.1f}",
                f"{us['redis']:.1f}",
                " · ".join(f"{cores[g]:.2f}" for g in ("outrider", "wrk", "nginx", "redis", "other")),
                f"{t['errors']}",
            ]
        )
    return rows


HEADER = [
    "outrider",
    "req/s (range)",
    "p99 ms",
    "outrider CPU µs/req (range)",
    "of it, supervisor",
    "wrk µs/req",
    "nginx µs/req",
    "redis-server µs/req",
    "cores: outrider · wrk · nginx · redis · other",
    "errors",
]


def render_text(s: dict[str, Any]) -> str:
    """The table and the verdicts as printed at the end of a run."""
    lines = [f"medians of {s['rounds']} interleaved rounds", " | ".join(HEADER)]
    lines += [" | ".join(row).replace("**", "") for row in _rows(s)]
    return "\n".join([*lines, *verdicts(s)])


def render_markdown(s: dict[str, Any], facts: dict[str, Any]) -> str:
    """The section between the markers."""
    m = facts["machine"]
    table = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    table += ["| " + " | ".join(row) + " |" for row in _rows(s)]
    return "\n".join(
        [
            f"### Latest run: {facts['date']}",
            "",
            f"- Command: `{facts['command']}` (`make bench` runs it too); {s['rounds']} interleaved rounds "
            f"of `{facts['load']}` per target, "
            f"wall time {facts['wall_s']:.0f} s.",
            f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}; load average at start "
            f"{m['loadavg_at_start']}. wrk, nginx (one worker), redis-server and outrider share these cores.",
            "",
            "Medians over the rounds. CPU is user + system time from /proc, per completed request: "
            "outrider's is summed over every process of it (the supervisor and its workers); `other` is "
            "the machine's busy time that none of the measured processes spent (the other, idle outrider "
            "instances, this script, and anything else running on the machine).",
            "",
            *table,
            "",
            *(f"- {v}" for v in verdicts(s)),
        ]
    )
