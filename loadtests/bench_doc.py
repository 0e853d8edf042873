"""The generated part of docs/benchmarks.md: figures, machine, command and profile of the latest run.

Only the text between the two markers is replaced; the prose around it is written by people.
Usage: update_doc(Path("docs/benchmarks.md"), render_markdown(cells, facts, prof))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtests.bench_fleet import CASES
from loadtests.bench_load import LOADS
from loadtests.bench_profile import Profile
from loadtests.bench_report import CASE_TITLES, Cell, Key, fmt, ratios, table

BEGIN = (
    "<!-- bench:begin — written by `python -m loadtests.bench`; edits between the markers are overwritten -->"
)
END = "<!-- bench:end -->"
PROXIES = ("outrider", "nginx", "bare")


def _md_row(columns: list[str]) -> str:
    return "| " + " | ".join(columns) + " |"


def _md_table(lines: list[str]) -> list[str]:
    """A header row, the separator Markdown wants, then the rest."""
    columns = lines[0].count("|") - 1
    return [lines[0], "|" + "---|" * columns, *lines[1:]]


def _figures(cells: dict[Key, Cell], seconds: float) -> list[str]:
    out: list[str] = []
    for case in CASES:
        for load in LOADS:
            title = f"**{CASE_TITLES[case]} — {load.name}**, {load.kind}: `{load.command(seconds)}`"
            out += ["", title, "", *_md_table(table(cells, case, load.name, _md_row))]
    return out


def _x(values: list[float | None]) -> str:
    return " · ".join(fmt(v, ".2f", "×") for v in values)


HEADLINE = [
    "upstream",
    "load",
    "outrider/direct: req/s · p50 · p99",
    "outrider/nginx: req/s · p50 · p99",
    "CPU µs/req: outrider · nginx · bare",
]


def _headline(cells: dict[Key, Cell], rounds: int) -> list[str]:
    """One row per case and load: outrider's ratios, and CPU per request of the three proxies."""
    rows = [_md_row(HEADLINE)]
    for case in CASES:
        for load in LOADS:
            r = ratios(cells, case, load.name)
            vs_direct = _x([r[f"outrider/direct {f}"] for f in ("throughput", "p50", "p99")])
            vs_nginx = _x([r[f"outrider/nginx {f}"] for f in ("throughput", "p50", "p99")])
            cpu = [c.cpu_us_per_request if (c := cells.get((case, load.name, t))) else None for t in PROXIES]
            rows.append(
                _md_row([case, load.name, vs_direct, vs_nginx, " · ".join(fmt(v, ",.0f") for v in cpu)])
            )
    intro = f"Medians of {rounds} rounds; the tables below give the figures behind the ratios."
    return [intro, "", *_md_table(rows)]


def _ranking(title: str, rows: list[tuple[str, float]], code: bool = True) -> list[str]:
    quote = "`" if code else ""
    lines = [_md_row([title, "share"]), *[_md_row([f"{quote}{n}{quote}", f"{v:.1%}"]) for n, v in rows]]
    return ["", *_md_table(lines)]


def _profile(prof: Profile | None) -> list[str]:
    if prof is None:
        return ["", "No profile in this run (`--no-profile`)."]
    if prof.error is not None:
        return ["", f"No profile: {prof.error}"]
    trunk = f"`{prof.trunk[0]}` … `{prof.trunk[-1]}`" if prof.trunk else "none"
    others = ", ".join(f"`{n}` {v:.0%}" for n, v in prof.other_threads) or "none"
    intro = (
        f"`{prof.command}` on outrider in front of the fixed-body upstream, under `wrk -t1 -c32`: "
        f"{prof.samples} samples of the main thread (the event loop), which was busy in {prof.busy:.0%} of "
        f"the {prof.ticks} sampling ticks. Shares are of the main thread's busy samples, functions named as "
        f"`function (file:first line)`. The cumulative ranking leaves out the frames all stacks share "
        f"({trunk}). "
        "By component, a sample counts for the innermost frame outside the standard library; a leaf "
        "`Runner.run` is time inside uvloop's C code (polling, socket reads, callbacks)."
    )
    return [
        "",
        intro,
        *_ranking("by component", prof.components, code=False),
        *_ranking("own time (leaf frame)", prof.own),
        *_ranking("cumulative (anywhere on the stack)", prof.cumulative),
        "",
        f"Other threads, share of ticks busy, by leaf frame: {others}.",
    ]


def _sse(sse: dict[str, dict[str, float]] | None) -> list[str]:
    """The streaming case: time to the first event and to the end, direct vs outrider."""
    if not sse:
        return []
    lines = [
        "",
        "#### Streaming: an SSE token stream (20 events, 10 ms apart), one request at a time",
        "",
        "`python -m loadtests.bench_sse` (also run by `make bench`); medians of 100 answers per target, "
        "interleaved.",
        "",
        "| target | first event ms | end of stream ms | events |",
        "|---|---|---|---|",
    ]
    for name, fig in sse.items():
        lines.append(
            f"| {name} | {fig['first_event_ms']:.2f} | {fig['total_ms']:.1f} | {fig['events']:.0f} |"
        )
    if "direct" in sse and "outrider" in sse:
        extra = sse["outrider"]["first_event_ms"] - sse["direct"]["first_event_ms"]
        lines += ["", f"Time to first event through outrider: {extra:+.2f} ms over direct."]
    return lines


def render_markdown(cells: dict[Key, Cell], facts: dict[str, Any], prof: Profile | None) -> str:
    """The section between the markers."""
    m = facts["machine"]
    s = facts["settings"]
    lines = [
        f"### Latest run: {facts['date']}",
        "",
        f"- Command: `make bench` (= `python -m loadtests.bench`); {s['rounds']} interleaved rounds, "
        f"{s['seconds']:g} s per load, wall time {facts['wall_s']:.0f} s.",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_gib']} GiB, Linux {m['kernel']}; "
        f"load average at start {m['loadavg_at_start']}.",
        f"- Versions: Python {m['python']}, aiohttp {m['aiohttp']}, uvloop {m['uvloop']}, "
        f"httptools {m.get('httptools')}, {m['nginx']}, HAProxy {m.get('haproxy')}, {m['wrk']}, "
        f"hey {m['hey']}.",
        "",
        *_headline(cells, s["rounds"]),
        *_figures(cells, s["seconds"]),
        *_sse(facts.get("sse")),
        "",
        "#### Profile: top costs on outrider's request path",
        *_profile(prof),
    ]
    return "\n".join(lines)


def update_doc(path: Path, section: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the text between the markers (the markers are appended first if the file has none)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    path.write_text(f"{head}{begin}\n{section}\n{end}{tail}")
