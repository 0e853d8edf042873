"""The report's plots, drawn from report.json alone: e-values, intervals, weights, latency, shadow agreement.

Usage: html = "".join(plot_figures(doc))   # <figure class="plot" id="plot-…"> elements, inline SVG

Every figure keeps its id whether or not there is data yet (a placeholder says why it is empty), except the
shadow figure, which exists only for experiments with shadows. Decisions are drawn as labelled vertical
lines at the record where they were taken, so each plot can be read against the timeline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from analysis.svg_plot import Chart, Num, Scale, Style, padded
from experiments.metrics import TOKEN_METRICS

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
"""Okabe–Ito colours (told apart with colour-vision deficiencies); dash patterns carry them in greyscale."""
DASHES = ("", "7 4", "2 3", "9 3 2 3")
DECISION = Style("#444", "4 3", 1.2)
HARM_LINE = Style("#B00020", "10 4", 1.3)
PASS_LINE = Style("#1B7F3B", "3 3", 1.6)
REFERENCE = Style("#777", "2 3", 1.0)
E_FLOOR, E_CEILING = -3.0, 10.0
"""E-values below 10⁻³ are drawn on the floor of the plot, above 10¹⁰ on its ceiling: far from the thresholds
(20 to a few hundred) the exact size adds nothing, and the lines near the thresholds stay legible."""
RATIO_METRICS = ("error_rate", "latency_gmean", "latency_mean", "latency_p50", "latency_p99", *TOKEN_METRICS)
"""Estimated as ratios (tokens_per_s as candidate/stable time per output token: analysis.token_metrics)."""
X_LABEL = "outcome records (requests judged)"


def figure(fig_id: str, title: str, caption: str, body: str) -> str:
    """One plot container with a stable id (the browser test looks for these ids)."""
    return (
        f'<figure class="plot" id="{fig_id}"><figcaption><strong>{escape(title)}</strong> '
        f"{escape(caption)}</figcaption>{body}</figure>"
    )


def _empty(why: str) -> str:
    return f'<p class="empty">{escape(why)}</p>'


def series_of(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The `series` block of a report (empty for reports written before it existed)."""
    series = doc.get("series")
    return series if isinstance(series, Mapping) else {}


def _looks(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    looks = series_of(doc).get("looks")
    return looks if isinstance(looks, Mapping) else {}


def _decisions(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [d for d in series_of(doc).get("decisions") or [] if isinstance(d.get("records"), int | float)]


def _x_scale(doc: Mapping[str, Any]) -> Scale:
    xs = [*(_looks(doc).get("records") or []), *(d["records"] for d in _decisions(doc))]
    return Scale(0.0, float(max(xs, default=1) or 1), X_LABEL)


def _mark_decisions(chart: Chart, doc: Mapping[str, Any]) -> None:
    for d in _decisions(doc):
        chart.vline(float(d["records"]), DECISION, str(d.get("kind")))


def _style(i: int, width: float = 2.0, dash: str | None = None) -> Style:
    return Style(PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)] if dash is None else dash, width)


def _log10_e(values: Sequence[Num]) -> list[float | None]:
    """log E (natural) → log10 E held between floor and ceiling (never exp: E can exceed a float)."""
    return [None if v is None else min(max(v / math.log(10), E_FLOOR), E_CEILING) for v in values]


def evalues_plot(doc: Mapping[str, Any]) -> str:
    """Each rule's e-values over the records, against the 1/(α/K) (harm) and 1/α (pass) lines."""
    looks, th = _looks(doc), doc.get("thresholds") or {}
    title, caption = "E-values", "harm (solid) and non-inferiority or goal (dashed) per metric; log scale."
    if not looks.get("records"):
        return figure("plot-evalues", title, caption, _empty("No look yet: fewer than 100 records judged."))
    lines = [
        (m, _log10_e(m.get(key) or []), key)
        for m in looks.get("metrics", [])
        for key in ("log_e_harm", "log_e_noninf")
    ]
    lines = [(m, ys, key) for m, ys, key in lines if any(y is not None for y in ys)]
    refs: list[Num] = [
        math.log10(v) for v in (th.get("harm"), th.get("pass")) if isinstance(v, int | float) and v > 0
    ]
    lo, hi = padded([*(y for _, ys, _ in lines for y in ys), *refs], 0.08)
    chart = Chart(
        "evalues", _x_scale(doc), Scale(max(lo, E_FLOOR), hi, "e-value (log scale)", pow10=True), title
    )
    if th.get("harm"):
        chart.hline(math.log10(th["harm"]), HARM_LINE, f"harm threshold 1/(α/K) = {th['harm']:g}", right=True)
    if th.get("pass"):
        chart.hline(math.log10(th["pass"]), PASS_LINE, f"pass threshold 1/α = {th['pass']:g}")
    xs = looks["records"]
    names = [str(m.get("name")) for m in looks.get("metrics", [])]
    for m, ys, key in lines:
        i = names.index(str(m.get("name")))
        harm = key == "log_e_harm"
        test = "harm" if harm else ("non-inferiority" if m.get("role") == "guardrail" else "goal")
        style = _style(i, 2.2 if harm else 1.6, "" if harm else "7 4")
        chart.line(xs, ys, style, f"{m.get('name')} {test}")
        last = next(((x, y) for x, y in zip(xs[::-1], ys[::-1], strict=False) if y is not None), None)
        if last is not None:
            chart.text(float(last[0]), float(last[1]), f"{m.get('name')} {test}", style)
    _mark_decisions(chart, doc)
    note = " Values below 10⁻³ or above 10¹⁰ are drawn on the floor or the ceiling."
    return figure("plot-evalues", title, caption + note, chart.svg() + chart.legend_html())


def _reference_lines(rule: Mapping[str, Any]) -> list[tuple[float, Style, str]]:
    name = str(rule.get("name"))
    if name not in RATIO_METRICS:
        return [(0.0, REFERENCE, "no difference")]
    out = [(1.0, REFERENCE, "no change (ratio 1)")]
    if rule.get("role") == "guardrail" and isinstance(rule.get("margin"), int | float):
        out.append((float(rule["margin"]), HARM_LINE, f"margin ×{rule['margin']:g}"))
    elif rule.get("role") == "goal" and isinstance(rule.get("min_effect"), int | float):
        sign = 1.0 if rule.get("direction") == "increase" else -1.0
        out.append((1.0 + sign * float(rule["min_effect"]), PASS_LINE, "goal"))
    return out


def _interval_chart(doc: Mapping[str, Any], i: int, m: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    xs, est, lo, hi = _looks(doc)["records"], m["estimate"], m["ci_low"], m["ci_high"]
    refs = _reference_lines(rule)
    last = [v for v in (lo[-1] if lo else None, hi[-1] if hi else None) if v is not None]
    # The first intervals can be unbounded: the y range follows the estimates and the final interval.
    y_lo, y_hi = padded([*est, *last, *(r[0] for r in refs)], 0.15)
    unit = "candidate / stable" if str(m.get("name")) in RATIO_METRICS else "candidate − stable"
    title = f"{m.get('name')} ({m.get('role')})"
    chart = Chart(f"interval-{i}", _x_scale(doc), Scale(y_lo, y_hi, unit), title, height=210)
    style = _style(i)
    chart.band(xs, lo, hi, style, "decision bounds")
    chart.line(xs, est, Style(style.color, "", 2.0), "estimate")
    for k, (y, ref_style, label) in enumerate(refs):
        chart.hline(y, ref_style, label, right=k % 2 == 1)  # alternate sides: margins sit close to 1
    _mark_decisions(chart, doc)
    return f'<div class="subplot"><h4>{escape(title)}</h4>{chart.svg()}{chart.legend_html()}</div>'


def intervals_plot(doc: Mapping[str, Any]) -> str:
    """Each metric's estimate and anytime interval narrowing over the records (one panel per rule)."""
    looks = _looks(doc)
    title, caption = (
        "Decision bounds",
        "estimate, the harm test's lower bound (α/K) and the non-inferiority test's upper bound (α).",
    )
    if not looks.get("records") or not looks.get("metrics"):
        return figure("plot-intervals", title, caption, _empty("No look yet: fewer than 100 records judged."))
    rules = list(doc.get("metrics") or [])
    panels = []
    for i, m in enumerate(looks["metrics"]):
        rule = next(
            (r for r in rules if r.get("name") == m.get("name") and r.get("role") == m.get("role")), m
        )
        panels.append(_interval_chart(doc, i, m, rule))
    return figure("plot-intervals", title, caption, "".join(panels))


def weights_plot(doc: Mapping[str, Any]) -> str:
    """The candidate's traffic share, step by step, with every decision marked."""
    series = series_of(doc)
    start = series.get("initial_weight")
    marks = _decisions(doc)
    xs: list[Num] = [0.0, *(float(d["records"]) for d in marks)]
    ys: list[Num] = [start if isinstance(start, int | float) else None, *(d.get("weight") for d in marks)]
    x_scale = _x_scale(doc)
    xs.append(x_scale.hi)
    ys.append(ys[-1])
    # Up to 110 so that a line at 100% (promoted) and its label stay clear of the frame.
    chart = Chart("weights", x_scale, Scale(0.0, 110.0, "candidate traffic (%)"), "Traffic weights")
    style = _style(1, 2.4)
    chart.line(xs, ys, style, "candidate weight", step=True)
    for x, y in zip(xs[:-1], ys[:-1], strict=True):
        if isinstance(x, int | float) and isinstance(y, int | float):
            chart.text(x, y, f"{y:g}%", style, end=False)
    _mark_decisions(chart, doc)
    caption = "the candidate's share of traffic; vertical lines are decisions (automatic or manual)."
    return figure("plot-weights", "Traffic weights", caption, chart.svg() + chart.legend_html())


def latency_plot(doc: Mapping[str, Any]) -> str:
    """Latency distributions per serving variant (share of the variant's responses per log-spaced bin)."""
    hist = series_of(doc).get("latency_histogram") or {}
    edges, counts = hist.get("edges") or [], hist.get("counts") or {}
    title, caption = "Latency distributions", "share of each variant's responses per latency bin (log scale)."
    if len(edges) < 2 or not any(sum(c) for c in counts.values()):
        return figure("plot-latency", title, caption, _empty("No responses recorded."))
    xs = [math.log10(e) for e in edges]
    shares = {v: [100.0 * n / max(sum(c), 1) for n in c] for v, c in counts.items()}
    top = max(max(s, default=0.0) for s in shares.values())
    chart = Chart(
        "latency",
        Scale(xs[0], xs[-1], "latency (ms)", pow10=True),
        Scale(0.0, top * 1.1 or 1.0, "share (%)"),
        title,
    )
    for i, (variant, share) in enumerate(shares.items()):
        chart.line(
            xs,
            [*share, share[-1]],
            _style(i, 2.0),
            f"{variant} ({sum(counts[variant])} responses)",
            step=True,
        )
    return figure("plot-latency", title, caption, chart.svg() + chart.legend_html())


def shadow_plot(doc: Mapping[str, Any]) -> str | None:
    """Each shadow's agreement with its anytime interval against the requirement (None without shadows)."""
    columns = _looks(doc).get("shadow") or {}
    if not columns and not doc.get("shadow"):
        return None
    title = "Shadow agreement"
    caption = (
        "share of the shadow's answers that agree with the stable variant's answer to the same input, with "
        "its anytime interval (agreement with each primary variant: the shadow checks and report.md)."
    )
    xs = _looks(doc).get("records") or []
    if not columns or not xs:
        return figure("plot-shadow", title, caption, _empty("No look yet: fewer than 100 records judged."))
    reqs = [c.get("requirement") for c in columns.values()]
    finals = [c["ci_low"][-1] for c in columns.values() if c.get("ci_low")]
    y_lo, _ = padded([v for c in columns.values() for v in c["estimate"]] + reqs + finals, 0.15)
    y_lo = max(y_lo, -0.05)  # a little below 0, so an agreement of 0 is not hidden by the frame either
    # Agreement often sits at exactly 1: leave room above it so the line is not hidden by the frame.
    chart = Chart("shadow", _x_scale(doc), Scale(y_lo, 1.0 + (1.0 - y_lo) * 0.06, "agreement"), title)
    for i, (name, c) in enumerate(columns.items()):
        style = _style(i)
        chart.band(xs, c["ci_low"], c["ci_high"], style, f"{name} anytime interval")
        chart.line(xs, c["estimate"], style, f"{name} agreement")
        if isinstance(c.get("requirement"), int | float):
            chart.hline(float(c["requirement"]), PASS_LINE, f"{name} requirement {c['requirement']:g}")
    _mark_decisions(chart, doc)
    return figure("plot-shadow", title, caption, chart.svg() + chart.legend_html())


def plot_figures(doc: Mapping[str, Any]) -> list[str]:
    """Every plot of the report, in reading order."""
    figures = [evalues_plot(doc), intervals_plot(doc), weights_plot(doc), latency_plot(doc)]
    shadow = shadow_plot(doc)
    return figures + ([shadow] if shadow is not None else [])
