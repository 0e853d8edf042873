"""The report's time series: one replay of the outcomes with the controller's looks, each look recorded.

Usage: replayed = replay_series(experiment, records, Judge); doc = build_report(..., series=replayed.series)

The replay is the offline one (`analysis.verdict.Looker`, a look every LOOK_EVERY records), so a report
made live, from a data dir or from an export is drawn from the same computation. Unlike `outrider analyze`
it goes on after a final decision (the e-values keep their path; no further decisions are taken), so the
plots cover every record. The columns are thinned to at most MAX_POINTS looks (decision looks are kept).
Blocking and numpy-heavy: call it from a worker thread, never on the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from analysis.columns import is_error
from analysis.policy import Policy
from analysis.verdict import LOOK_EVERY, Decision, JudgeLike, Looker
from experiments.model import Experiment
from experiments.outcome import OutcomeRecord
from experiments.state import ExperimentState, Phase, initial_state, planned_weights, transition

MAX_POINTS = 400
"""Looks kept in report.json (every k-th one beyond this): enough for a plot, small enough to read."""
METRIC_COLUMNS = ("log_e_harm", "log_e_noninf", "estimate", "ci_low", "ci_high")
SHADOW_COLUMNS = ("estimate", "ci_low", "ci_high")
BINS_PER_DECADE = 8
PHASES: tuple[Phase, ...] = get_args(Phase)


@dataclass(frozen=True, slots=True)
class Replayed:
    """What one replay gives: the decisions (as the controller takes them), the state they lead to, the last
    snapshot and the series."""

    decisions: list[Decision]
    state: ExperimentState
    snapshot: dict[str, Any]
    series: dict[str, Any]


def candidate_name(experiment: Experiment) -> str | None:
    """The first serving variant with role `candidate` (None without one)."""
    return next((v.name for v in experiment.serving if v.role == "candidate"), None)


def candidate_weight(experiment: Experiment, weights: Mapping[str, float]) -> float:
    """The candidate's traffic share (percent) in `weights`."""
    name = candidate_name(experiment)
    return float(weights.get(name, 0.0)) if name is not None else 0.0


def replay_series(
    experiment: Experiment, records: Sequence[OutcomeRecord], judge_factory: Callable[[Experiment], JudgeLike]
) -> Replayed:
    """Replay `records` (store order) with the controller's looks and record every look."""
    looker = Looker(judge_factory(experiment), experiment)
    looker.rewards_inline = True  # an export (or the store's iter_raw) carries the timely rewards inline
    looks = _Columns(experiment)
    decisions: list[Decision] = []
    n_looks = len(records) // LOOK_EVERY
    stride = max(1, math.ceil(n_looks / MAX_POINTS))
    for i in range(n_looks):
        block = records[i * LOOK_EVERY : (i + 1) * LOOK_EVERY]
        taken = looker.feed(block, {})
        decisions += taken
        if taken or i % stride == 0 or i == n_looks - 1:
            looks.add(looker, block[-1].ts)
    series = {
        "look_every": LOOK_EVERY,
        "thresholds": thresholds(experiment),
        "initial_weight": candidate_weight(experiment, initial_state(experiment).weights),
        "looks": looks.as_json(),
        "latency_histogram": latency_histogram(records, [v.name for v in experiment.serving]),
    }
    return Replayed(decisions, state_of(looker, decisions, records), looker.snapshot(), series)


def thresholds(experiment: Experiment) -> dict[str, float | None]:
    """α and the e-value lines a rule must cross: 1/(α/(K·J)) for harm (K guardrails, J candidates), 1/(α/J)
    to pass."""
    candidate = candidate_name(experiment)
    if candidate is None:
        return {"alpha": None, "harm": None, "pass": None}
    policy = Policy.from_experiment(experiment, candidate)
    k, a = max(len(policy.guardrails), 1), policy.comparison_alpha
    return {"alpha": policy.alpha, "harm": k / a, "pass": 1 / a}


class _Columns:
    """The recorded looks, column by column (compact JSON; plots read whole columns)."""

    def __init__(self, experiment: Experiment) -> None:
        self.experiment = experiment
        self.cols: dict[str, list[Any]] = {
            k: [] for k in ("records", "candidate_requests", "ts", "phase", "step", "weight")
        }
        self.metrics: list[dict[str, Any]] = []
        self.shadow: dict[str, dict[str, Any]] = {}

    def add(self, looker: Looker, ts: float) -> None:
        last, view = looker.last_look, looker.view
        fresh = last.snapshot if last is not None and last.records == looker.records else {}
        # A progressing look already classified every rule: reuse its snapshot instead of classifying again.
        stats = fresh if "metrics" in fresh else looker.judge.snapshot()
        weight = candidate_weight(self.experiment, planned_weights(self.experiment, view.phase, view.step))
        row = (looker.records, looker.candidates, ts, view.phase, view.step, weight)
        for key, value in zip(self.cols, row, strict=True):
            self.cols[key].append(value)
        self._add_metrics(stats.get("metrics", []))
        if looker.shadow is not None:
            self._add_shadow(fresh.get("shadow") or looker.shadow.verdicts())

    def _add_metrics(self, metrics: list[dict[str, Any]]) -> None:
        if not self.metrics:
            self.metrics = [
                {"name": m["name"], "role": m["role"], **{k: [] for k in METRIC_COLUMNS}} for m in metrics
            ]
        for column, m in zip(self.metrics, metrics, strict=True):
            for key in METRIC_COLUMNS:
                column[key].append(m.get(key))

    def _add_shadow(self, verdicts: Mapping[str, Mapping[str, Any]]) -> None:
        for name, verdict in verdicts.items():
            agreement = verdict.get("agreement") or {}
            column = self.shadow.setdefault(
                name, {"requirement": agreement.get("requirement"), **{k: [] for k in SHADOW_COLUMNS}}
            )
            for key in SHADOW_COLUMNS:
                column[key].append(agreement.get(key))

    def as_json(self) -> dict[str, Any]:
        return {**self.cols, "metrics": self.metrics, "shadow": self.shadow}


def latency_histogram(records: Sequence[OutcomeRecord], variants: Sequence[str]) -> dict[str, Any]:
    """Counts of latency_ms per serving variant in log-spaced bins (every response, pinned or not)."""
    by_variant: dict[str, list[float]] = {v: [] for v in variants}
    for r in records:
        if r.variant in by_variant and r.latency_ms > 0:
            by_variant[r.variant].append(r.latency_ms)
    seen = [x for xs in by_variant.values() for x in xs]
    if not seen:
        return {"edges": [], "counts": {}}
    lo = math.floor(math.log10(min(seen)) * BINS_PER_DECADE)
    hi = math.floor(math.log10(max(seen)) * BINS_PER_DECADE) + 1
    edges = [10 ** (k / BINS_PER_DECADE) for k in range(lo, hi + 1)]
    counts: dict[str, list[int]] = {}
    for variant, xs in by_variant.items():
        row = [0] * (hi - lo)
        for x in xs:
            row[min(math.floor(math.log10(x) * BINS_PER_DECADE) - lo, hi - lo - 1)] += 1
        counts[variant] = row
    return {"edges": edges, "counts": counts}


def arm_summary(records: Sequence[OutcomeRecord], experiment: Experiment) -> dict[str, dict[str, Any]]:
    """Per serving variant, over its unpinned records: what each metric measures, arm by arm."""
    out: dict[str, dict[str, Any]] = {}
    for v in experiment.serving:
        rows = [r for r in records if r.variant == v.name and not r.pinned]
        lat = sorted(r.latency_ms for r in rows)
        rewards = [r.reward for r in rows if r.reward is not None]
        n = len(rows)
        out[v.name] = {
            "requests": n,
            "error_rate": sum(is_error(r.status, r.error) for r in rows) / n if n else None,
            "latency_mean": sum(lat) / n if n else None,
            "latency_gmean": math.exp(sum(math.log(max(x, 1e-6)) for x in lat) / n) if n else None,
            "latency_p50": _quantile(lat, 0.5),
            "latency_p99": _quantile(lat, 0.99),
            "reward_mean": sum(rewards) / len(rewards) if rewards else None,
        }
    return out


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted values (None when empty)."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def state_of(
    looker: Looker, decisions: Sequence[Decision], records: Sequence[OutcomeRecord]
) -> ExperimentState:
    """The state the replayed decisions lead to, each history entry as the controller writes it."""
    experiment = looker.experiment
    state = initial_state(experiment)
    for d in decisions:
        change = looker.transition(d)
        if change is None:
            continue
        at = records[d.records - 1].ts if 0 < d.records <= len(records) else 0.0
        state = transition(
            experiment,
            state,
            change[0],
            change[1],
            at,
            f"{d.kind}: {'; '.join(d.reasons)}",
            decision=d.kind,
            reasons=d.reasons,
            at_records=d.records,
            at_candidate_requests=d.candidate_requests,
            snapshot=d.snapshot,
        )
    return state


def decision_marks(
    experiment: Experiment, state: ExperimentState, looks: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Every change in the state's history placed on the records axis.

    Automatic decisions carry their record position; a manual change (admin API) is placed at the first look
    at or after its time.
    """
    out = []
    for h in state.history:
        if h.get("reason") == "created":  # version 1: where the experiment began, not a decision
            continue
        phase = next((p for p in PHASES if p == h.get("phase")), None)
        step = h.get("step")
        records = h.get("at_records")
        if not isinstance(records, int):
            records = _records_at(h.get("at"), looks.get("ts") or [], looks.get("records") or [])
        weights = planned_weights(experiment, phase, step) if phase and isinstance(step, int) else {}
        out.append(
            {
                "version": h.get("version"),
                "kind": str(h.get("decision") or "MANUAL"),
                "records": records,
                "candidate_requests": h.get("at_candidate_requests"),
                "at": h.get("at"),
                "phase": phase,
                "step": step,
                "weight": candidate_weight(experiment, weights),
            }
        )
    return out


def _records_at(at: object, ts: Sequence[float], records: Sequence[int]) -> int | None:
    if not isinstance(at, int | float):
        return None
    return next((n for t, n in zip(ts, records, strict=False) if t >= at), records[-1] if records else None)
