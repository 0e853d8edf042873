"""The report's data-quality checks: sample ratio, outcome drops, feedback arrival, shadow errors.

Usage: for name, kind, text in checks(doc): ...   # kind: pass / warn / fail / info

Each check reads report.json only and says what it saw; the thresholds are the engine's own (a flagged SRM
holds the experiment, drops above 0.1% of records block promotion), so a badge never contradicts a decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DROP_LIMIT = 0.001
"""No promotion while more than this share of an arm's outcomes was lost (analysis.policy.MAX_DROP_SHARE)."""
SHADOW_ERROR_WARN = 0.01
"""A shadow erring on more than 1% of the compared pairs is worth a look even before it FAILs."""

Check = tuple[str, str, str]


def checks(doc: Mapping[str, Any]) -> list[Check]:
    """Every check that applies to this report, in a fixed order."""
    return [srm_check(doc), drops_check(doc), feedback_check(doc), *shadow_checks(doc)]


def srm_check(doc: Mapping[str, Any]) -> Check:
    """Sample ratio mismatch: the SRM Bayes factor against 1/α_srm (latched once flagged)."""
    srm = doc.get("srm") or {}
    log_bf = srm.get("log_bf")
    shown = f"{log_bf:.3g}" if isinstance(log_bf, int | float) else "—"
    if srm.get("flagged"):
        return (
            "sample ratio",
            "fail",
            f"MISMATCH: the split differs from the configured weights (log BF {shown})",
        )
    if log_bf is None:
        return "sample ratio", "info", "not computed yet"
    return "sample ratio", "pass", f"traffic split as configured (log Bayes factor {shown})"


def drops_check(doc: Mapping[str, Any]) -> Check:
    """Outcome records lost before storage, against the 0.1% that blocks promotion."""
    drops = doc.get("drops") or {}
    lost = sum(int(v) for v in drops.values())
    records = (doc.get("counts") or {}).get("records") or 0
    detail = ", ".join(f"{k}: {v}" for k, v in sorted(drops.items())) or "none"
    if lost == 0:
        return "outcome drops", "pass", "no outcome record lost"
    share = lost / (records + lost) if records else 1.0
    kind = "fail" if share > DROP_LIMIT else "warn"
    return "outcome drops", kind, f"{lost} records dropped ({share:.3%} of {records + lost}; {detail})"


def feedback_check(doc: Mapping[str, Any]) -> Check:
    """Feedback arrival: rewards are judged only when they arrive in time."""
    fb = doc.get("feedback") or {}
    timely, late = int(fb.get("timely") or 0), int(fb.get("late") or 0)
    wanted = any(m.get("name") == "reward_mean" for m in doc.get("metrics") or [])
    share = fb.get("arrival_share")
    shown = f"{share:.1%}" if isinstance(share, int | float) else "—"
    text = f"{timely} timely, {late} late (arrival share {shown})"
    if timely + late == 0:
        return "feedback arrival", ("warn" if wanted else "info"), "no feedback received"
    if late > timely or (wanted and timely == 0):
        return "feedback arrival", "warn", f"{text}: late rewards are not judged"
    return "feedback arrival", "pass", text


def shadow_checks(doc: Mapping[str, Any]) -> list[Check]:
    """Per shadow: its verdict (judged against stable), its error rate, requests not mirrored, and its
    agreement with each primary variant that answered."""
    out: list[Check] = []
    for name, v in (doc.get("shadow") or {}).items():
        verdict, rate = v.get("verdict"), v.get("error_rate")
        errors = ", ".join(f"{k}: {n}" for k, n in (v.get("errors") or {}).items()) or "none"
        kind = (
            "fail"
            if verdict == "FAIL"
            else ("warn" if isinstance(rate, float) and rate > SHADOW_ERROR_WARN else "pass")
        )
        shown = f"{rate:.2%}" if isinstance(rate, int | float) else "—"
        skipped = ", ".join(f"{k}: {n}" for k, n in (v.get("skipped") or {}).items())
        text = f"verdict {verdict} (against {v.get('primary') or 'stable'}); {v.get('pairs')} pairs; "
        text += f"error rate {shown} ({errors})"
        text += f"; not mirrored: {skipped}" if skipped else ""
        text += "".join(_agreement_with(primary, p) for primary, p in (v.get("by_primary") or {}).items())
        out.append((f"shadow {name}", kind, text))
    return out


def _agreement_with(primary: str, figures: Mapping[str, Any]) -> str:
    a = figures.get("agreement") or {}
    estimate, lo, hi = a.get("estimate"), a.get("ci_low"), a.get("ci_high")
    if not isinstance(estimate, int | float):
        return f"; agreement with {primary}: no compared pairs"
    bounds = f" [{lo:.4f}, {hi:.4f}]" if isinstance(lo, int | float) and isinstance(hi, int | float) else ""
    return f"; agreement with {primary}: {estimate:.4f}{bounds} over {a.get('n')} pairs"
