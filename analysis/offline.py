"""Judging offline: `outrider analyze` (an export re-judged) and `outrider report` (from a data dir).

Usage: result = analyze_records(experiment, records, Judge); print(orjson.dumps(result))
The `analyze --json` shape is a contract: decision, decided_at, reasons, srm {log_bf, flagged}, metrics
[{name, estimate, ci_low, ci_high, log_e_harm, log_e_noninf}] (more keys may be added).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from analysis.controller import replay
from analysis.report import build_report, write_report
from analysis.verdict import JudgeLike
from experiments.model import Experiment
from experiments.outcome import OutcomeRecord
from experiments.state import ExperimentState, Phase, initial_state, transition
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
    }


def final_state_of(result: dict[str, Any], experiment: Experiment) -> ExperimentState:
    """A state whose history holds the replayed decisions (for reports made from an export)."""
    state = initial_state(experiment)
    phases: dict[str, Phase] = {
        "ADVANCE": "progressing",
        "SHADOW_OK": "progressing",
        "PROMOTE": "promoted",
        "ROLLBACK": "rolled_back",
    }
    for d in result["decisions"]:
        phase = phases.get(d["kind"], "rolled_back")
        step = {"ADVANCE": d["step"] + 1, "SHADOW_OK": 0}.get(d["kind"], d["step"])
        state = transition(
            experiment,
            state,
            phase,
            step,
            0.0,
            f"{d['kind']}: {'; '.join(d['reasons'])}",
            decision=d["kind"],
            reasons=d["reasons"],
            at_candidate_requests=d["candidate_requests"],
        )
    return state


def report_from_store(data_dir: Path, name: str, out_dir: Path, judge: JudgeFactory) -> list[Path]:
    """Re-judge the stored outcomes of `name` with its stored config and state; write the report files."""
    from experiments.config import load_experiment_text
    from experiments.sqlite_store import DB_NAME, SqliteOutcomeStore

    states = SqliteStateStore(data_dir / DB_NAME)
    try:
        config, state = states.load_config(name), states.load(name)
    finally:
        states.close()
    if config is None or state is None:
        raise LookupError(f"no experiment {name!r} in {data_dir}")
    experiment = load_experiment_text(config[1], config[0])
    store = SqliteOutcomeStore(data_dir / DB_NAME, readonly=True)
    try:
        records = [OutcomeRecord.from_dict(orjson.loads(raw)) for raw in store.iter_raw(name)]
        feedback = store.feedback_counts(name)
    finally:
        store.close()
    _, snapshot = replay(experiment, records, judge)
    return write_report(build_report(experiment, state, snapshot, feedback=feedback), out_dir)
