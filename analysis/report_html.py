"""report.json rendered as one self-contained HTML page: decision, scorecard, plots, data quality, timeline.

Usage: Path("report.html").write_text(render_html(doc))

Inline CSS and SVG only: no script, no font, no external URL, so the page opens offline and prints. Every
state reads without colour too: the decision banner carries an icon and a word, badges say PASS / WARN /
FAIL, plot lines differ by dash pattern. Like report.md it is a rendering of report.json, never a second
computation: numbers come from the document as they are.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from html import escape
from typing import Any

from analysis.report_checks import checks
from analysis.report_plots import RATIO_METRICS, plot_figures, series_of
from analysis.wording import evalue, figure

BANNERS = {
    "PROMOTE": ("promote", "✓", "candidate promoted"),
    "ROLLBACK": ("rollback", "✗", "candidate rolled back"),
    "SHADOW_FAIL": ("rollback", "✗", "shadow failed: candidate rolled back"),
    "INCONCLUSIVE": ("neutral", "?", "no decision within the request limit"),
}
BADGES = {"pass": "✓ PASS", "warn": "! WARN", "fail": "✗ FAIL", "info": "– N/A"}
CSS = """
:root { --ink: #1d1d1f; --muted: #5f6368; --line: #d0d0d0; --ok: #1b7f3b; --bad: #b00020; --warn: #8a5a00; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); margin: 0; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 32px 0 10px; }
h4 { font-size: 14px; margin: 10px 0 2px; } .meta { color: var(--muted); margin: 0 0 18px; }
#decision { border: 3px solid var(--muted); border-radius: 8px; padding: 14px 18px; background: #f1f1f1; }
#decision.promote { border-color: var(--ok); background: #e7f4ea; }
#decision.rollback { border-color: var(--bad); border-style: double; border-width: 5px; background: #fbe9eb; }
#decision .verdict { font-size: 26px; font-weight: 700; margin: 0; }
#decision .icon { display: inline-block; width: 1.3em; text-align: center; }
#decision ul { margin: 8px 0 0; padding-left: 22px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.harm td:first-child { border-left: 4px solid var(--bad); }
tr.passed td:first-child { border-left: 4px solid var(--ok); }
.badge { display: inline-block; min-width: 5.5em; padding: 1px 6px; border: 1px solid; border-radius: 4px;
  font-weight: 700; font-size: 12px; text-align: center; }
.badge.pass { color: var(--ok); } .badge.fail { color: var(--bad); border-width: 2px; }
.badge.warn { color: var(--warn); border-style: dashed; } .badge.info { color: var(--muted); }
figure.plot { margin: 18px 0; padding: 10px 12px; border: 1px solid var(--line); border-radius: 6px; }
figure.plot figcaption { margin-bottom: 6px; color: var(--muted); } figure.plot strong { color: var(--ink); }
svg.chart { width: 100%; height: auto; display: block; }
.subplot { margin-top: 6px; } .empty { color: var(--muted); font-style: italic; }
ul.legend { list-style: none; padding: 0; margin: 4px 0 0; display: flex; flex-wrap: wrap; gap: 4px 18px;
  font-size: 13px; } ul.legend svg { display: inline-block; vertical-align: middle; margin-right: 5px; }
@media print {
  body { font-size: 11pt; } main { max-width: none; padding: 0; }
  #decision, figure.plot, table, .subplot { break-inside: avoid; } h2 { break-after: avoid; }
  #decision { background: none; } th { background: none; }
}
"""


def fmt(value: Any) -> str:
    """A number for people (4 significant digits), — for unknown; other values as text."""
    if isinstance(value, float):
        return figure(value)
    return "—" if value is None else str(value)


fmt_e = evalue
"""An e-value from its log (analysis.wording)."""


def utc(ts: Any) -> str:
    """A Unix time as a UTC date and time (— for unknown)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if isinstance(ts, int | float) else "—"


def _num(key: str, value: Any, text: str | None = None) -> str:
    """A table cell holding one number of report.json (data-value keeps it exact for tools and tests)."""
    raw = "" if value is None else repr(value)
    return f'<td class="num" data-key="{key}" data-value="{escape(raw)}">{escape(text or fmt(value))}</td>'


def badge(kind: str) -> str:
    """A PASS / WARN / FAIL / N/A badge (word and symbol, so it reads without colour)."""
    return f'<span class="badge {kind}">{BADGES[kind]}</span>'


def banner(doc: Mapping[str, Any]) -> str:
    """The decision banner with its reasons."""
    decision = str(doc.get("decision"))
    css, icon, words = BANNERS.get(decision, ("neutral", "●", "no final decision yet"))
    at = doc.get("decided_at")
    where = f" at {at} candidate requests" if at is not None else ""
    reasons = doc.get("reasons") or ["no automatic decision yet"]
    items = "".join(f"<li>{escape(str(r))}</li>" for r in reasons)
    return (
        f'<section id="decision" class="{css}" role="status"><p class="verdict"><span class="icon" '
        f'aria-hidden="true">{icon}</span> {escape(decision)}</p><p>{escape(words)}{escape(where)} '
        f"(phase <code>{escape(str(doc.get('phase')))}</code>, "
        f"state version {escape(str(doc.get('state_version')))})</p><ul>{items}</ul></section>"
    )


def _change(m: Mapping[str, Any]) -> str:
    """The relative change (ratio − 1, in %) or the difference, with the bounds the decision used."""
    est, lo, hi = m.get("estimate"), m.get("ci_low"), m.get("ci_high")
    if m.get("name") in RATIO_METRICS:
        pct = [f"{(v - 1) * 100:+.1f}%" if isinstance(v, int | float) else "—" for v in (est, lo, hi)]
        return f"{pct[0]} [{pct[1]}, {pct[2]}]"
    return f"Δ {fmt(est)} [{fmt(lo)}, {fmt(hi)}]"


def _status(m: Mapping[str, Any]) -> tuple[str, str]:
    if m.get("harm"):
        return "harm", "✗ harm"
    if m.get("passed"):
        return "passed", "✓ passed"
    if m.get("blocked"):
        return "blocked", f"⏸ {m['blocked']}"
    return "pending", "… pending"


def scorecard(doc: Mapping[str, Any]) -> str:
    """The metrics table: per-arm values, relative change with its interval, e-values against thresholds."""
    th, arms = doc.get("thresholds") or {}, doc.get("arms") or {}
    stable, candidate = _roles(doc)
    harm_t, pass_t = fmt(th.get("harm")), fmt(th.get("pass"))
    head = (
        "<tr><th>metric</th><th>rule</th><th>stable</th><th>candidate</th><th>estimate</th>"
        "<th>relative change [harm bound at α/K, pass bound at α]</th>"
        f"<th>harm e-value (rolls back at ≥ {harm_t})</th><th>pass e-value (passes at ≥ {pass_t})</th>"
        "<th>status</th></tr>"
    )
    rows = []
    for m in doc.get("metrics") or []:
        name = str(m.get("name"))
        css, status = _status(m)
        rows.append(
            f'<tr class="{css}" data-metric="{escape(name)}" data-role="{escape(str(m.get("role")))}">'
            f"<td>{escape(name)}</td><td>{escape(_rule_text(m))}</td>"
            f"{_num('stable', (arms.get(stable) or {}).get(name))}"
            f"{_num('candidate', (arms.get(candidate) or {}).get(name))}"
            f"{_num('estimate', m.get('estimate'))}"
            f'<td class="num" data-key="interval" data-low="{m.get("ci_low")!r}" '
            f'data-high="{m.get("ci_high")!r}">{escape(_change(m))}</td>'
            f"{_num('log_e_harm', m.get('log_e_harm'), fmt_e(m.get('log_e_harm')))}"
            f"{_num('log_e_noninf', m.get('log_e_noninf'), fmt_e(m.get('log_e_noninf')))}"
            f"<td>{escape(status)}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="9" class="empty">No metric judged yet.</td></tr>')
    return f'<table id="scorecard"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _rule_text(m: Mapping[str, Any]) -> str:
    if m.get("role") == "guardrail":
        return f"guardrail, margin ×{fmt(m.get('margin'))}"
    return f"goal: {m.get('direction') or 'decrease'} by ≥ {fmt(m.get('min_effect') or 0.0)}"


def _roles(doc: Mapping[str, Any]) -> tuple[str | None, str | None]:
    variants = doc.get("variants") or []
    stable = next((v["name"] for v in variants if v.get("role") == "stable"), None)
    return stable, next((v["name"] for v in variants if v.get("role") == "candidate"), None)


def quality(doc: Mapping[str, Any]) -> str:
    """Data-quality checks (sample ratio, drops, feedback arrival, shadow errors), each with a badge."""
    rows = "".join(
        f'<tr data-check="{escape(name)}" data-status="{kind}"><td>{badge(kind)}</td><td>{escape(name)}</td>'
        f"<td>{escape(text)}</td></tr>"
        for name, kind, text in checks(doc)
    )
    head = "<tr><th>status</th><th>check</th><th>detail</th></tr>"
    return f'<table id="quality"><thead>{head}</thead><tbody>{rows}</tbody></table>'


def timeline(doc: Mapping[str, Any]) -> str:
    """Every state change: when, at which record, the weights it set, and why."""
    marks = {d.get("version"): d for d in series_of(doc).get("decisions") or []}
    rows = []
    for h in doc.get("history") or []:
        mark = marks.get(h.get("version")) or {}
        when = utc(h.get("at"))
        weight = mark.get("weight")
        rows.append(
            f"<tr><td>{escape(str(h.get('version')))}</td><td>{escape(when)}</td>"
            f"{_num('records', mark.get('records'))}"
            f"{_num('candidate_requests', h.get('at_candidate_requests'))}"
            f"<td>{escape(str(h.get('decision') or 'manual'))}</td><td>{escape(str(h.get('phase')))}</td>"
            f"{_num('weight', weight, f'{weight:g}%' if isinstance(weight, int | float) else None)}"
            f"<td>{escape(str(h.get('reason') or ''))}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="8" class="empty">No change since the experiment started.</td></tr>')
    head = (
        "<tr><th>version</th><th>time</th><th>record</th><th>candidate requests</th><th>decision</th>"
        "<th>phase</th><th>candidate weight</th><th>reason</th></tr>"
    )
    return f'<table id="timeline"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def render_html(doc: Mapping[str, Any]) -> str:
    """The whole page."""
    name = escape(str(doc.get("experiment")))
    counts = doc.get("counts") or {}
    when = utc(doc.get("generated_at"))
    variants = ", ".join(f"{v.get('name')} ({v.get('role')})" for v in doc.get("variants") or [])
    meta = (
        f"source <code>{escape(str(doc.get('source')))}</code> · generated {escape(when)} · "
        f"{escape(fmt(counts.get('records')))} records judged, "
        f"{escape(fmt(counts.get('candidate_requests')))} candidate requests · variants: {escape(variants)}"
    )
    body = "".join(
        [
            f'<h1>Promotion report: {name}</h1><p class="meta">{meta}</p>',
            banner(doc),
            '<h2 id="scorecard-title">Scorecard</h2>',
            scorecard(doc),
            '<h2 id="plots">Plots</h2>',
            *plot_figures(doc),
            '<h2 id="quality-title">Data quality</h2>',
            quality(doc),
            '<h2 id="timeline-title">Timeline</h2>',
            timeline(doc),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>outrider report: {name}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )
