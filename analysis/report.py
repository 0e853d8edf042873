"""Promotion reports: one JSON document (the single source) rendered to Markdown and HTML.

Usage: doc = build_report(experiment, state, snapshot, counts); write_report(doc, out_dir)
`report.json` holds everything; `report.md` and `report.html` are renderings of it, never computed apart.
The plots' series (`analysis.report_series.replay_series`) and per-arm figures are computed by the caller
and passed in, so importing this module does not load numpy (the server imports it at start-up).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from analysis.report_html import render_html
from analysis.wording import evalue, figure, step_of
from experiments.model import CanaryStrategy, Experiment
from experiments.state import ExperimentState

FINAL = {"promoted": "PROMOTE", "rolled_back": "ROLLBACK", "paused": "HOLD", "progressing": "CONTINUE"}


def last_decision(state: ExperimentState) -> Mapping[str, Any]:
    """The newest history entry that an automatic or manual decision wrote (not the state's creation)."""
    for entry in reversed(state.history):
        if entry.get("reason") != "created":
            return entry
    return {}


def build_report(
    experiment: Experiment,
    state: ExperimentState,
    snapshot: Mapping[str, Any],
    drops: Mapping[str, int] | None = None,
    now: float | None = None,
    feedback: Mapping[str, int] | None = None,
    series: Mapping[str, Any] | None = None,
    arms: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report document; `series` (the looks over time) and `arms` (per-variant figures) feed the plots and
    the scorecard's stable/candidate columns."""
    from analysis.report_series import decision_marks, thresholds  # numpy: only once a report is built

    last = last_decision(state)
    running = state.phase in ("progressing", "shadowing")
    looked = snapshot.get("last_look") if running else None  # what `status` shows as the last look
    decision = str(last.get("decision") or looked or FINAL.get(state.phase, state.phase.upper()))
    reasons = last.get("reasons") or ([str(last["reason"])] if last.get("reason") else [])
    # The scorecard shows the statistics the decision was taken on; the counts are the final ones.
    taken_on = last.get("snapshot")
    judged = taken_on if isinstance(taken_on, Mapping) else snapshot
    return {
        "experiment": experiment.name,
        "source": experiment.source,
        "generated_at": now if now is not None else time.time(),
        "decision": decision,
        "phase": state.phase,
        "reasons": reasons,
        "decided_at": last.get("at_candidate_requests"),
        "state_version": state.version,
        "weights": dict(state.weights),
        "history": [dict(h) for h in state.history],
        "srm": judged.get("srm", {}),
        "metrics": judged.get("metrics", []),
        "decided_at_records": last.get("at_records"),
        "shadow": snapshot.get("shadow", {}),
        "counts": {k: snapshot.get(k) for k in ("records", "candidate_requests", "n_stable", "n_candidate")},
        "unit_of_analysis": judged.get("unit_of_analysis", "request"),
        "units": judged.get("units"),
        "effective_units": judged.get("effective_units"),
        "capped": judged.get("capped"),
        "sizing": sizing_notes(judged),
        "slo": judged.get("slo", []),
        "comparisons": judged.get("comparisons"),
        "drops": dict(drops or {}),
        "feedback": feedback_quality(feedback or {}, snapshot.get("records")),
        "variants": [{"name": v.name, "role": v.role, "upstream": v.upstream} for v in experiment.variants],
        "thresholds": thresholds(experiment),
        "steps": list(experiment.strategy.steps) if isinstance(experiment.strategy, CanaryStrategy) else None,
        "arms": dict(arms or {}),
        "series": {
            **(series or {}),
            "decisions": decision_marks(experiment, state, (series or {}).get("looks") or {}),
        },
    }


RELIABLE_UNITS = 30
"""Below this many effective units per arm the unit-level tests' normal approximation is not to be trusted."""


def sizing_notes(snapshot: Mapping[str, Any]) -> list[str]:
    """What the amount of data can and cannot support (effective units; margins out of reach)."""
    notes = []
    eff = snapshot.get("effective_units") or {}
    if snapshot.get("unit_of_analysis") == "unit":
        least = min((v for v in eff.values() if v is not None), default=0.0)
        if least < RELIABLE_UNITS:
            notes.append(
                f"only {least:.0f} effective units in the smaller arm (< {RELIABLE_UNITS}): "
                "a decision on so few units is unreliable"
            )
    for m in snapshot.get("metrics") or []:
        if m.get("role") != "guardrail" or m.get("blocked"):
            continue
        est, hi, margin = m.get("estimate"), m.get("ci_high"), m.get("margin")
        if not (isinstance(est, float) and isinstance(hi, float) and isinstance(margin, float)):
            continue
        if est > 0 and hi > margin >= est and m.get("name") != "reward_mean":
            notes.append(
                f"{m['name']}: the non-inferiority bound {hi:.4g} is still above the margin {margin:g} "
                f"at an estimate of {est:.4g}; more units (not more requests from the same units) narrow it"
            )
    return notes


def feedback_quality(counts: Mapping[str, int], records: Any) -> dict[str, Any]:
    """Feedback arrival: timely and late rewards, and the share of judged requests that got one."""
    timely, late = int(counts.get("timely", 0)), int(counts.get("late", 0))
    share = timely / records if isinstance(records, int) and records > 0 else None
    return {"timely": timely, "late": late, "arrival_share": share}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return figure(value)
    return "—" if value is None else str(value)


def render_markdown(doc: Mapping[str, Any]) -> str:
    """The report as Markdown."""
    lines = [
        f"# Promotion report: {doc['experiment']}",
        "",
        f"**Decision: {doc['decision']}** (phase `{doc['phase']}`, state version {doc['state_version']})",
        "",
    ]
    lines += [f"- {r}" for r in doc["reasons"]] or ["- (no automatic decision yet)"]
    srm = doc.get("srm") or {}
    counts = doc.get("counts") or {}
    lines += [
        "",
        "## Data quality",
        "",
        f"- Sample ratio: log Bayes factor {_fmt(srm.get('log_bf'))}, "
        f"{'**MISMATCH**' if srm.get('flagged') else 'ok'}",
        f"- Outcome drops: {sum(doc.get('drops', {}).values())}",
        f"- Feedback: {doc['feedback']['timely']} timely, {doc['feedback']['late']} late "
        f"(arrival share {_fmt(doc['feedback']['arrival_share'])})",
        f"- Records judged: {_fmt(counts.get('records'))}, "
        f"candidate requests: {_fmt(counts.get('candidate_requests'))}",
        f"- Unit of analysis: {doc.get('unit_of_analysis', 'request')}"
        + _units_line(doc.get("units"), doc.get("effective_units")),
        *[f"- Sizing: {n}" for n in doc.get("sizing") or []],
        *[f"- SLO {s.get('name')} {s.get('limit')}: {'**BROKEN**' if s.get('broken') else 'ok'}" for s in
          doc.get("slo") or []],
        "",
        "## Scorecard",
        "",
        "Bounds are the ones the decision used: the lower bound of the harm test (at α/K, rollback when",
        "it is above the harm margin) and the upper bound of the non-inferiority test (at α, promotion",
        "needs it below the margin).",
        "",
        "| metric | estimate | lower bound (harm) | harm margin | upper bound (non-inferiority) | margin "
        f"| e harm / {_fmt((doc.get('thresholds') or {}).get('harm'))} "
        f"| e pass / {_fmt((doc.get('thresholds') or {}).get('pass'))} |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for m in doc.get("metrics", []):
        lines.append(
            f"| {m.get('name')} | {_fmt(m.get('estimate'))} | {_fmt(m.get('ci_low'))} "
            f"| {_fmt(m.get('harm_margin'))} | {_fmt(m.get('ci_high'))} | {_fmt(m.get('margin'))} "
            f"| {evalue(m.get('log_e_harm'))} | {evalue(m.get('log_e_noninf'))} |"
        )
    lines += shadow_markdown(doc.get("shadow") or {})
    lines += ["", "## Timeline", "", "| version | phase | step | reason |", "|---|---|---|---|"]
    steps = doc.get("steps")
    for h in doc.get("history", []):
        step = step_of(h.get("step"), steps)
        lines.append(f"| {h.get('version')} | {h.get('phase')} | {step} | {h.get('reason')} |")
    lines += ["", f"Final weights: {doc['weights']}", ""]
    return "\n".join(lines)


def _units_line(units: Any, effective: Any) -> str:
    if not isinstance(units, Mapping):
        return ""
    eff = effective if isinstance(effective, Mapping) else {}
    return (
        f"; units stable {units.get('stable')}, candidate {units.get('candidate')} "
        f"(effective {_fmt(eff.get('stable'))} / {_fmt(eff.get('candidate'))})"
    )


def shadow_markdown(shadow: Mapping[str, Any]) -> list[str]:
    """The shadow verdicts as a Markdown table (nothing without shadows)."""
    if not shadow:
        return []
    stable = next((v.get("primary") for v in shadow.values() if v.get("primary")), "stable")
    lines = [
        "",
        "## Shadows (same input, paired answers)",
        "",
        f"The verdict compares each shadow with the stable variant's answers ({stable}); the agreement with",
        "each primary variant that answered is below it, never blended.",
        "",
        "| shadow | verdict | pairs | agreement | anytime CI | required | latency ratio | errors "
        "| not mirrored |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in shadow.items():
        a, lat = v.get("agreement") or {}, v.get("latency_ratio") or {}
        lines.append(
            f"| {name} | **{v.get('verdict')}** | {v.get('pairs')} | {_fmt(a.get('estimate'))} "
            f"| [{_fmt(a.get('ci_low'))}, {_fmt(a.get('ci_high'))}] | {_fmt(a.get('requirement'))} "
            f"| {_fmt(lat.get('estimate'))} | {v.get('errors') or {}} | {v.get('skipped') or {}} |"
        )
    lines += [
        "",
        "| shadow | primary | role | pairs | agreement | anytime CI | error rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, v in shadow.items():
        for primary, p in (v.get("by_primary") or {}).items():
            a = p.get("agreement") or {}
            lines.append(
                f"| {name} | {primary} | {p.get('role')} | {p.get('pairs')} | {_fmt(a.get('estimate'))} "
                f"| [{_fmt(a.get('ci_low'))}, {_fmt(a.get('ci_high'))}] | {_fmt(p.get('error_rate'))} |"
            )
    return lines


def write_report(doc: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Write report.json, report.md and report.html into `out_dir` (blocking; call from a thread on a loop).

    The renderings read the JSON as written (a round trip), so they can only show what report.json holds.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "report.json", out_dir / "report.md", out_dir / "report.html"]
    raw = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"
    stored = orjson.loads(raw)
    paths[0].write_bytes(raw)
    paths[1].write_text(render_markdown(stored))
    paths[2].write_text(render_html(stored))
    return paths
