"""The SQLite outcome table: records go in with only their indexed columns read out of them, the others
computed when read; a data dir made when every column was stored keeps taking records."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from experiments.sqlite_store import SqliteOutcomeStore
from tests.experiments.test_sink import record

STORED_SCHEMA = """
CREATE TABLE outcomes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT    NOT NULL,
    ts         REAL    NOT NULL,
    request_id TEXT    NOT NULL,
    variant    TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    record     BLOB    NOT NULL
);
"""
"""The table as data dirs made before 2026-12-08 have it."""


def columns(path: Path) -> list[tuple[str, float, str, str, int]]:
    with sqlite3.connect(path) as conn:
        return list(
            conn.execute("SELECT experiment, ts, request_id, variant, status FROM outcomes ORDER BY seq")
        )


def test_the_columns_of_a_new_table_are_those_of_the_records(tmp_path: Path) -> None:
    store = SqliteOutcomeStore(tmp_path / "outrider.db")
    store.write([record(1, "a"), record(2, "b")])
    assert columns(tmp_path / "outrider.db") == [
        ("a", 1001.0, "r1", "stable", 200),
        ("b", 1002.0, "r2", "stable", 200),
    ]
    assert [r.request_id for _, r in store.read_after("b", 0, 10)] == ["r2"]
    assert store.find("r1") is not None


def test_a_table_with_stored_columns_keeps_taking_records(tmp_path: Path) -> None:
    path = tmp_path / "outrider.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(STORED_SCHEMA)
    store = SqliteOutcomeStore(path)
    store.write([record(1, "a"), record(2, "a")])
    assert columns(path) == [("a", 1001.0, "r1", "stable", 200), ("a", 1002.0, "r2", "stable", 200)]
    assert [r.request_id for _, r in store.read_after("a", 0, 10)] == ["r1", "r2"]
