"""Versioned experiment states in the SQLite file: the last state of each experiment survives restarts.

Usage: store = SqliteStateStore(data_dir / "outrider.db"); store.save(state); state = store.load(name)
Blocking; callers on an event loop use a thread. A save never replaces a newer version (compare-and-set on
`version`), so a stale writer cannot roll the state back.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from experiments.sqlite_store import connect
from experiments.state import ExperimentState

SCHEMA = """
CREATE TABLE IF NOT EXISTS states (
    experiment TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    state      BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS configs (
    experiment TEXT PRIMARY KEY,
    source     TEXT NOT NULL,
    text       TEXT NOT NULL
);
"""


def state_from_json(data: dict[str, Any]) -> ExperimentState:
    """Inverse of `ExperimentState.to_json`."""
    return ExperimentState(
        experiment=str(data["experiment"]),
        version=int(data["version"]),
        phase=data["phase"],
        step=int(data["step"]),
        weights={str(k): float(v) for k, v in data["weights"].items()},
        updated_at=float(data["updated_at"]),
        history=tuple(data.get("history", ())),
        extra=dict(data.get("extra", {})),
    )


class SqliteStateStore:
    """Latest state per experiment."""

    def __init__(self, path: Path) -> None:
        self._conn: sqlite3.Connection = connect(path)
        self._conn.executescript(SCHEMA)

    def load(self, experiment: str) -> ExperimentState | None:
        """The stored state, or None if the experiment never had one."""
        row = self._conn.execute("SELECT state FROM states WHERE experiment = ?", (experiment,)).fetchone()
        return None if row is None else state_from_json(orjson.loads(row[0]))

    def versions(self) -> dict[str, int]:
        """The stored version of every experiment: a cheap query to poll (proxy.fleet.state_watch)."""
        return {str(name): int(v) for name, v in self._conn.execute("SELECT experiment, version FROM states")}

    def save(self, state: ExperimentState) -> bool:
        """Store `state` unless a version ≥ its own is already stored; True if stored."""
        blob = orjson.dumps(state.to_json())
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            row = self._conn.execute(
                "SELECT version FROM states WHERE experiment = ?", (state.experiment,)
            ).fetchone()
            if row is not None and int(row[0]) >= state.version:
                return False
            self._conn.execute(
                "INSERT INTO states (experiment, version, state) VALUES (?, ?, ?) "
                "ON CONFLICT(experiment) DO UPDATE SET version = excluded.version, state = excluded.state",
                (state.experiment, state.version, blob),
            )
        return True

    def save_config(self, experiment: str, source: str, text: str) -> None:
        """Keep the experiment file that is in force, so reports can be made from the data dir alone."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO configs (experiment, source, text) VALUES (?, ?, ?) "
                "ON CONFLICT(experiment) DO UPDATE SET source = excluded.source, text = excluded.text",
                (experiment, source, text),
            )

    def load_config(self, experiment: str) -> tuple[str, str] | None:
        """(source, text) of the experiment file last run, or None."""
        row = self._conn.execute(
            "SELECT source, text FROM configs WHERE experiment = ?", (experiment,)
        ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def experiments(self) -> list[str]:
        """Names of the experiments this store has seen."""
        return [str(r[0]) for r in self._conn.execute("SELECT experiment FROM configs ORDER BY experiment")]

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
