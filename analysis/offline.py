"""Judging offline: `outrider analyze` (an export re-judged) and the reports (live, from a data dir, from an
export: all three through `report_doc`, one replay of the outcomes).

Usage: result = analyze_records(experiment, records, Judge); print(orjson.dumps(result))
The `analyze --json` shape is a contract: decision, decided_at, reasons, srm {log_bf, flagged}, metrics
[{name, estimate, ci_low, ci_high, log_e_harm, log_e_noninf}] (more keys may be added).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from analysis.controller import replay
from analysis.report import build_report, last_decision, write_report
from analysis.report_series import arm_summary, replay_series
from analysis.verdict import JudgeLike
from experiments.model import Experiment
from experiments.outcome import OutcomeRecord
from experiments.sqlite_store import DB_NAME, SqliteOutcomeStore
from experiments.state import ExperimentState
from experiments.state_store import SqliteStateStore

JudgeFactory = Callable[[Experiment], JudgeLike]
FINAL_KINDS = ("PROMOTE", "ROLLBACK", "INCONCLUSIVE", "SHADOW_FAIL")


def parse_jsonl(lines: Iterable[bytes], experiment: str, source: str = "-") -> list[OutcomeRecord]:
    """Outcome records of `experiment` from JSON Lines (other experiments' lines are skipped).

    Raises ValueError naming the line of the first malformed record.
    """
    out: list[OutcomeRecord] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
            if doc.get("experiment") == experiment:
                out.append(OutcomeRecord.from_dict(doc))
        except (orjson.JSONDecodeError, TypeError, AttributeError) as err:
            raise ValueError(f"{source}:{number}: not an outcome record: {err}") from None
    return out


def analyze_records(
    experiment: Experiment, records: Sequence[OutcomeRecord], judge: JudgeFactory
) -> dict[str, Any]:
    """Replay the controller's looks over `records` and say what it decides."""
    decisions, snapshot = replay(experiment, records, judge)
    final = next((d for d in decisions if d.kind in FINAL_KINDS), None)
    return {
        "experiment": experiment.name,
        "decision": final.kind if final else str(snapshot["last_look"]),
        "decided_at": final.candidate_requests if final else None,
        "reasons": list(final.reasons) if final else [],
        "srm": snapshot.get("srm", {"log_bf": 0.0, "flagged": False}),
        "metrics": snapshot.get("metrics", []),
        "shadow": snapshot.get("shadow", {}),
        "decisions": [
            {
                "kind": d.kind,
                "records": d.records,
                "candidate_requests": d.candidate_requests,
                "step": d.step,
                "reasons": d.reasons,
            }
            for d in decisions
        ],
        "records": snapshot.get("records", 0),
        "candidate_requests": snapshot.get("candidate_requests", 0),
        "decided_at_records": final.records if final else None,
        "unit_of_analysis": snapshot.get("unit_of_analysis", "request"),
        "units": snapshot.get("units"),
        "effective_units": snapshot.get("effective_units"),
    }


def report_doc(
    experiment: Experiment,
    records: Sequence[OutcomeRecord],
    judge: JudgeFactory,
    state: ExperimentState | None = None,
    snapshot: Mapping[str, Any] | None = None,
    **facts: Any,
) -> dict[str, Any]:
    """The report document of `records`: one replay gives the plots' series (and, without a `state`, the
    decisions: an export judged here); `facts` are build_report's `drops` and `feedback`."""
    replayed = replay_series(experiment, records, judge)
    state = state if state is not None else replayed.state
    decided = last_decision(state).get("at_records")
    upto = decided if isinstance(decided, int) else len(records)
    return build_report(
        experiment,
        state,
        snapshot if snapshot is not None else replayed.snapshot,
        series=replayed.series,
        arms=arm_summary(records[:upto], experiment),
        **facts,
    )


def stored_outcomes(data_dir: Path, name: str) -> tuple[list[OutcomeRecord], dict[str, int]]:
    """Every stored outcome of `name` (timely rewards joined) and its feedback counts (blocking)."""
    store = SqliteOutcomeStore(data_dir / DB_NAME, readonly=True)
    try:
        records = [OutcomeRecord.from_dict(orjson.loads(raw)) for raw in store.iter_raw(name)]
        return records, store.feedback_counts(name)
    finally:
        store.close()


def live_report(
    data_dir: Path,
    experiment: Experiment,
    state: ExperimentState,
    snapshot: Mapping[str, Any],
    drops: Mapping[str, int],
    judge: JudgeFactory,
    stored: tuple[list[OutcomeRecord], dict[str, int]] | None = None,
) -> list[Path]:
    """The report of an experiment that just finished, into DATA_DIR/reports/NAME (blocking: a thread);
    `stored`: its records and feedback counts when they are not in the data dir (a Redis store)."""
    records, feedback = stored if stored is not None else stored_outcomes(data_dir, experiment.name)
    doc = report_doc(experiment, records, judge, state, snapshot, drops=drops, feedback=feedback)
    return write_report(doc, data_dir / "reports" / experiment.name)


def report_from_store(data_dir: Path, name: str, out_dir: Path, judge: JudgeFactory) -> list[Path]:
    """Re-judge the stored outcomes of `name` with its stored config and state; write the report files."""
    from experiments.config import load_experiment_text

    states = SqliteStateStore(data_dir / DB_NAME)
    try:
        config, state = states.load_config(name), states.load(name)
    finally:
        states.close()
    if config is None or state is None:
        raise LookupError(f"no experiment {name!r} in {data_dir}")
    experiment = load_experiment_text(config[1], config[0])
    records, feedback = stored_outcomes(data_dir, name)
    return write_report(report_doc(experiment, records, judge, state, feedback=feedback), out_dir)


def report_from_export(export: Path, config: Path, out_dir: Path, judge: JudgeFactory) -> list[Path]:
    """Judge an export (`outrider export`) with an experiment file, as the controller would; write the report.

    Raises ConfigError for a bad experiment file, ValueError for a malformed export, OSError.
    """
    from experiments.config import load_experiment

    experiment = load_experiment(config)
    with export.open("rb") as fh:
        records = parse_jsonl(fh, experiment.name, str(export))
    # An export carries the timely rewards inside the records; late ones are not exported.
    feedback = {"timely": sum(r.reward is not None for r in records), "late": 0}
    return write_report(report_doc(experiment, records, judge, feedback=feedback), out_dir)
