"""The SQLite outcome table: records go in as rows with only their indexed columns read out of them, the
others computed when read; data dirs made when records were objects (every column stored, or computed) keep
taking records in their format, and every store exports the contract's objects."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson

from experiments.outcome import FIELDS, OutcomeRecord
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
OBJECTS_SCHEMA = """
CREATE TABLE outcomes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    record     BLOB    NOT NULL,
    ts         REAL    GENERATED ALWAYS AS (json_extract(CAST(record AS TEXT), '$.ts')) VIRTUAL,
    variant    TEXT    GENERATED ALWAYS AS (json_extract(CAST(record AS TEXT), '$.variant')) VIRTUAL,
    status     INTEGER GENERATED ALWAYS AS (json_extract(CAST(record AS TEXT), '$.status')) VIRTUAL
);
"""
"""The table as data dirs made on 2026-12-08 before records were rows have it."""


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


def test_a_table_of_objects_keeps_taking_objects(tmp_path: Path) -> None:
    path = tmp_path / "outrider.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OBJECTS_SCHEMA)
    store = SqliteOutcomeStore(path)
    assert not store.rows
    store.write([record(1, "a"), record(2, "a")])
    assert columns(path) == [("a", 1001.0, "r1", "stable", 200), ("a", 1002.0, "r2", "stable", 200)]
    with sqlite3.connect(path) as conn:
        first = conn.execute("SELECT record FROM outcomes ORDER BY seq").fetchone()[0]
    assert orjson.loads(first)["request_id"] == "r1"
    assert [r.request_id for _, r in store.read_after("a", 0, 10)] == ["r1", "r2"]


def test_a_new_store_keeps_rows_and_gives_back_the_contracts_objects(tmp_path: Path) -> None:
    store = SqliteOutcomeStore(tmp_path / "outrider.db")
    assert store.rows
    rec = record(1, "a")
    rec.shadows = [{"variant": "v3", "status": 200, "agree": True}]
    store.write([rec])
    with sqlite3.connect(tmp_path / "outrider.db") as conn:
        stored = conn.execute("SELECT record FROM outcomes").fetchone()[0]
    assert orjson.loads(stored) == [getattr(rec, name) for name in FIELDS]
    assert len(stored) < len(rec.to_json()) / 2 + 20  # about half the bytes of the object
    assert [orjson.loads(line) for line in store.iter_raw("a")] == [rec.to_dict()]  # the export's lines
    assert store.read_after("a", 0, 10) == [(1, rec)]
    assert store.find("r1") == (1, rec)


def test_rows_of_other_versions_read_with_defaults_or_without_unknown_fields() -> None:
    rec = record(1)
    row = [getattr(rec, name) for name in FIELDS]
    assert OutcomeRecord.from_stored(row[:10]) == OutcomeRecord.from_row(row[:10]) == rec  # older: defaults
    assert OutcomeRecord.from_stored([*row, "a field from a newer version"]) == rec
    assert OutcomeRecord.from_stored(rec.to_dict()) == rec


def test_the_order_of_the_fields_only_grows() -> None:
    # rows are positional: a field moved or removed would read every stored row wrong
    assert FIELDS[:23] == (
        "request_id", "ts", "experiment", "variant", "p_variant", "status", "error", "latency_ms",
        "upstream_ms", "unit", "shadows", "reward", "pinned", "state_version", "ttfb_ms", "bytes_out",
        "events", "method", "path", "ttft_ms", "itl_ms", "output_tokens", "finish_reason",
    )  # fmt: skip
