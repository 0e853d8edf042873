"""The embedded outcome store: one SQLite file in WAL mode, written in batches (group commit).

Usage: store = SqliteOutcomeStore(data_dir / "outrider.db"); store.write(batch); rows = store.read(...)
Every method is blocking: callers on an event loop run them in a thread (see `experiments.sink`). The
connection is only ever used by one thread at a time (the sink's writer), hence check_same_thread=False.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from experiments.outcome import OutcomeRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT    NOT NULL,
    ts         REAL    NOT NULL,
    request_id TEXT    NOT NULL,
    variant    TEXT    NOT NULL,
    status     INTEGER NOT NULL,
    record     BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS outcomes_by_experiment ON outcomes (experiment, seq);
CREATE INDEX IF NOT EXISTS outcomes_by_request ON outcomes (request_id);
"""

DB_NAME = "outrider.db"


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the store file (read-only when asked; it must then exist)."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a committed batch survives a process crash (kill -9); only an OS crash or power
        # loss can lose the last batches. FULL would fsync every commit for little gain on a sidecar.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class SqliteOutcomeStore:
    """Appends outcome records and reads them back in arrival order."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._conn = connect(path, readonly=readonly)

    def write(self, batch: Sequence[OutcomeRecord]) -> None:
        """Append `batch` in one transaction (all or nothing)."""
        rows = [(r.experiment, r.ts, r.request_id, r.variant, r.status, r.to_json()) for r in batch]
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT INTO outcomes (experiment, ts, request_id, variant, status, record) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def read_raw(
        self, experiment: str | None = None, after_seq: int = 0, limit: int = 10_000
    ) -> list[tuple[int, bytes]]:
        """Up to `limit` (seq, JSON bytes) rows after `after_seq`, in order."""
        if experiment is None:
            cur = self._conn.execute(
                "SELECT seq, record FROM outcomes WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            )
        else:
            cur = self._conn.execute(
                "SELECT seq, record FROM outcomes WHERE experiment = ? AND seq > ? ORDER BY seq LIMIT ?",
                (experiment, after_seq, limit),
            )
        return [(int(seq), bytes(rec)) for seq, rec in cur]

    def iter_raw(self, experiment: str | None = None, page: int = 10_000) -> Iterator[bytes]:
        """Every stored record as JSON bytes, in arrival order, paged."""
        after = 0
        while rows := self.read_raw(experiment, after, page):
            for seq, rec in rows:
                after = seq
                yield rec

    def read(
        self, experiment: str | None = None, after_seq: int = 0, limit: int = 10_000
    ) -> list[OutcomeRecord]:
        """Like `read_raw`, decoded."""
        return [
            OutcomeRecord.from_dict(orjson.loads(r)) for _, r in self.read_raw(experiment, after_seq, limit)
        ]

    def count(self, experiment: str | None = None) -> int:
        """Number of stored records."""
        if experiment is None:
            row = self._conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()
        else:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM outcomes WHERE experiment = ?", (experiment,)
            ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the connection (checkpointing the WAL when writable)."""
        self._conn.close()
