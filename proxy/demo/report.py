"""What the demo prints: a live progress line, and a per-variant scorecard with outrider's decision.

Usage: print_progress(name, view, tally, tty); print_scorecard(tally, elapsed_s, view, report_path)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from analysis.wording import evalue, figure, step_of
from proxy.cli.progress import bar

if TYPE_CHECKING:
    from proxy.demo.load import Tally

_last_shown: dict[str, object] = {"key": None, "polls": 0}


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of `values` (0 for an empty list)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def leading_evalues(view: Mapping[str, Any]) -> str:
    """`metric harm 62.2/60 pass 0.403/20` (each e-value over its threshold) for the last look's metrics."""
    analysis, limits = view.get("analysis") or {}, view.get("thresholds") or {}
    harm_t, pass_t = figure(limits.get("harm")), figure(limits.get("pass"))
    parts = []
    for m in (analysis.get("snapshot") or {}).get("metrics", []):
        harm, noninf = evalue(m.get("log_e_harm")), evalue(m.get("log_e_noninf"))
        parts.append(f"{m['name']} harm {harm}/{harm_t} pass {noninf}/{pass_t}")
    return "  ".join(parts)


def print_progress(name: str, view: Mapping[str, Any], tally: Tally, tty: bool) -> None:
    """One progress line: requests, weights, phase, last look and e-values (harm/pass)."""
    weights = view.get("weights", {})
    analysis = view.get("analysis") or {}
    line = (
        f"[{name}] {tally.total:>7,} req  candidate {weights.get('candidate', 0.0):>5.1f}%  "
        f"phase {view.get('phase')}  look {analysis.get('kind', '—')}  {leading_evalues(view)}"
    )
    if tty:  # a bar of the way through the canary steps (full once promoted or rolled back)
        print("\r" + (f"{canary_bar(view)} " + line)[:170].ljust(170), end="", flush=True)
        return
    # Without a terminal (CI logs, pipes): a line when the weights or the phase change, else every ~5 s.
    key = (view.get("phase"), weights.get("candidate"))
    polls = int(str(_last_shown["polls"])) + 1
    if key != _last_shown["key"] or polls >= 10:
        print(line, flush=True)
        _last_shown["key"], polls = key, 0
    _last_shown["polls"] = polls


def canary_bar(view: Mapping[str, Any]) -> str:
    """Progress through the canary steps: step k of n, full when the experiment has ended."""
    steps = (view.get("strategy") or {}).get("steps") or [100]
    done = view.get("phase") in ("promoted", "rolled_back")
    return bar(1.0 if done else (int(view.get("step") or 0) + 1) / (len(steps) + 1), width=12)


def offline_agreement(models: Path) -> float | None:
    """int8-vs-fp32 top-1 agreement on the held-out digits, from models/manifest.json (blocking)."""
    manifest = orjson.loads((models / "manifest.json").read_bytes())
    for model in manifest["models"]:
        if model["name"] == "digits-int8":
            return float(model["agreement_with_fp32"])
    return None


def print_shadow(view: Mapping[str, Any], offline: float | None) -> None:
    """The shadow verdict with the live agreement and its anytime interval, beside the offline figure."""
    shadow = ((view.get("analysis") or {}).get("snapshot") or {}).get("shadow") or {}
    for name, v in shadow.items():
        a = v.get("agreement") or {}
        print(
            f"shadow {name}: {v.get('verdict')} — agreement {_num(a.get('estimate'))} "
            f"over {a.get('n')} pairs, "
            f"anytime interval [{_num(a.get('ci_low'))}, {_num(a.get('ci_high'))}], "
            f"required ≥ {a.get('requirement')}; offline on the held-out digits: {_num(offline)}"
        )


_num = figure


def print_variants(tally: Tally, elapsed: float) -> None:
    """What the users saw per variant: counts, shares, error rates, latency quantiles, accuracy."""
    total = tally.total
    print(
        f"{total} responses in {elapsed:.1f}s ({total / max(elapsed, 1e-9):.0f} req/s), "
        f"{tally.failed} connection failures"
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
            f"{variant:<10} {n:>8} {100 * n / max(total, 1):>6.1f}% {100 * tally.errors[variant] / n:>6.2f}% "
            f"{quantile(lat, 0.5):>7.2f} {quantile(lat, 0.95):>7.2f} {quantile(lat, 0.99):>7.2f} {acc:>8.3f}"
        )
    switched = sum(1 for variants in tally.user_variants.values() if len(variants) > 1)
    print(
        f"users: {len(tally.user_variants)}; {switched} saw both variants (each step or decision moves some)"
    )


def print_scorecard(
    tally: Tally, elapsed: float, view: Mapping[str, Any], report: Path, counters: Mapping[str, float]
) -> None:
    """The decision with its reasons, then what the users saw per variant, then the outcome invariant."""
    state = view.get("state") or {}
    history = state.get("history") or []
    steps = (view.get("strategy") or {}).get("steps")
    print()
    for entry in history:
        print(
            f"  v{entry.get('version')}: {entry.get('phase')} step {step_of(entry.get('step'), steps)} "
            f"— {entry.get('reason')}"
        )
    print(f"outrider decided: {str(view.get('phase')).upper()}; report: {report}")
    print_variants(tally, elapsed)
    produced = counters.get("outrider_outcomes_produced_total", 0.0)
    stored = counters.get("outrider_outcomes_stored_total", 0.0)
    pending = counters.get("outrider_outcomes_pending", 0.0)
    dropped = sum(v for k, v in counters.items() if k.startswith("outrider_outcomes_dropped_total"))
    print(
        f"outcomes: produced {produced:.0f} = stored {stored:.0f} + pending {pending:.0f} "
        f"+ dropped {dropped:.0f}; responses seen by the users: {tally.total}"
    )
