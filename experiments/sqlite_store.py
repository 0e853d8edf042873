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

from experiments.outcome import OutcomeRecord, as_dict, row_of

ROWS_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    record     BLOB    NOT NULL,
    ts         REAL    GENERATED ALWAYS AS (json_extract(CAST(record AS TEXT), '$[1]')) VIRTUAL,
    variant    TEXT    GENERATED ALWAYS AS (json_extract(CAST(record AS TEXT), '$[3]')) VIRTUAL,
    status     INTEGER GENERATED ALWAYS AS (json_extract(CAST(record AS TEXT), '$[5]')) VIRTUAL
);
PRAGMA user_version = 2;
"""
"""A new store: each record a JSON array of its `FIELDS` values (experiments.outcome), less than half the
bytes of the same record as an object (189 against 435 for an inference answer), and the SQLite writer's cost
is mostly in proportion to the bytes: 5.8 → 3.2 µs a record (`python -m loadtests.bench_store`)."""
SCHEMA = """
CREATE INDEX IF NOT EXISTS outcomes_by_experiment ON outcomes (experiment, seq);
CREATE INDEX IF NOT EXISTS outcomes_by_request ON outcomes (request_id);
CREATE TABLE IF NOT EXISTS feedback (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id  TEXT    NOT NULL UNIQUE,
    outcome_seq INTEGER NOT NULL,
    experiment  TEXT    NOT NULL,
    reward      REAL    NOT NULL,
    ts          REAL    NOT NULL,
    late        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS feedback_by_experiment ON feedback (experiment, seq);
"""
ROWS_VERSION = 2
"""`PRAGMA user_version` of a store that keeps rows; older stores (0) keep records as JSON objects, and go on
doing so: each store has one format, so that its computed columns read every record."""

DB_NAME = "outrider.db"

# A batch goes in as one JSON array through json_each, and a page comes out as one string: one
# sqlite3_step each way instead of one per row. The module releases and retakes the GIL around every step,
# and with the event loop's thread busy every retake was a thread switch, two per record.
# Only the indexed columns are read out of each record as it goes in (each json_extract parses the record
# again: ~1 µs a column); `ts`, `variant` and `status` are computed when read.
INSERT_ROWS = """
INSERT INTO outcomes (experiment, request_id, record)
SELECT json_extract(value, '$[2]'), json_extract(value, '$[0]'), CAST(value AS BLOB)
FROM json_each(?)
"""
INSERT_BATCH = """
INSERT INTO outcomes (experiment, request_id, record)
SELECT json_extract(value, '$.experiment'), json_extract(value, '$.request_id'), CAST(value AS BLOB)
FROM json_each(?)
"""
INSERT_BATCH_STORED = """
INSERT INTO outcomes (experiment, ts, request_id, variant, status, record)
SELECT json_extract(value, '$.experiment'), json_extract(value, '$.ts'), json_extract(value, '$.request_id'),
       json_extract(value, '$.variant'), json_extract(value, '$.status'), CAST(value AS BLOB)
FROM json_each(?)
"""
"""For a data dir made before those columns were computed (they are stored there)."""
SELECT_PAGE = """
SELECT '[' || group_concat(seq || ',' || CAST(record AS TEXT), ',') || ']'
FROM (SELECT seq, record FROM outcomes WHERE experiment = ? AND seq > ? ORDER BY seq LIMIT ?)
"""


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
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'outcomes'"
        if conn.execute(exists).fetchone() is None:
            conn.executescript(ROWS_SCHEMA)
        conn.executescript(SCHEMA)
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class SqliteOutcomeStore:
    """Appends outcome records and reads them back in arrival order."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self._conn = connect(path, readonly=readonly)
        self.rows = self._conn.execute("PRAGMA user_version").fetchone()[0] >= ROWS_VERSION
        """Records are kept as rows (a store made since 2026-12-08), else as objects."""
        columns = {row[1]: row[6] for row in self._conn.execute("PRAGMA table_xinfo(outcomes)")}
        computed = columns.get("ts", 0) != 0  # hidden: computed when read
        self._insert = INSERT_ROWS if self.rows else INSERT_BATCH if computed else INSERT_BATCH_STORED

    def write(self, batch: Sequence[OutcomeRecord]) -> None:
        """Append `batch` in one transaction (all or nothing), in its order."""
        if not batch:
            return
        # one C call for the batch (for objects, orjson serialises the dataclasses)
        doc = orjson.dumps(list(map(row_of, batch)) if self.rows else batch)
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.execute(self._insert, (doc.decode(),))

    def read_raw(
        self, experiment: str | None = None, after_seq: int = 0, limit: int = 10_000
    ) -> list[tuple[int, bytes]]:
        """Up to `limit` (seq, JSON bytes) rows after `after_seq`, in order; each record a JSON object with
        the contract's field names (the export's lines), however the store keeps it."""
        if experiment is None:
            cur = self._conn.execute(
                "SELECT seq, record FROM outcomes WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            )
        else:
            cur = self._conn.execute(
                "SELECT seq, record FROM outcomes WHERE experiment = ? AND seq > ? ORDER BY seq LIMIT ?",
                (experiment, after_seq, limit),
            )
        if self.rows:
            return [(int(seq), orjson.dumps(as_dict(orjson.loads(rec)))) for seq, rec in cur]
        return [(int(seq), bytes(rec)) for seq, rec in cur]

    def read_after(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        """(seq, record) of `experiment` after `after_seq`, in store order (the controller's reader)."""
        row = self._conn.execute(SELECT_PAGE, (experiment, after_seq, limit)).fetchone()
        if row is None or row[0] is None:
            return []
        flat = orjson.loads(row[0])  # [seq, record, seq, record, ...]
        page = [(int(flat[i]), OutcomeRecord.from_stored(flat[i + 1])) for i in range(0, len(flat), 2)]
        if any(page[i][0] >= page[i + 1][0] for i in range(len(page) - 1)):
            page.sort(key=lambda item: item[0])  # group_concat's order is SQLite's, not a promise of SQL
        return page

    def iter_raw(self, experiment: str | None = None, page: int = 10_000) -> Iterator[bytes]:
        """Every stored record as JSON bytes, in arrival order, paged, with timely rewards joined in."""
        after = 0
        while rows := self.read_raw(experiment, after, page):
            rewards = self._rewards(rows[0][0], rows[-1][0])
            for seq, rec in rows:
                after = seq
                if seq in rewards:
                    doc = orjson.loads(rec)
                    doc["reward"] = rewards[seq]
                    rec = orjson.dumps(doc)
                yield rec

    def _rewards(self, first_seq: int, last_seq: int) -> dict[int, float]:
        cur = self._conn.execute(
            "SELECT outcome_seq, reward FROM feedback WHERE outcome_seq BETWEEN ? AND ? AND late = 0",
            (first_seq, last_seq),
        )
        return {int(seq): float(reward) for seq, reward in cur}

    def read(
        self, experiment: str | None = None, after_seq: int = 0, limit: int = 10_000
    ) -> list[OutcomeRecord]:
        """Like `read_raw`, decoded."""
        return [
            OutcomeRecord.from_dict(orjson.loads(r)) for _, r in self.read_raw(experiment, after_seq, limit)
        ]

    def find(self, request_id: str) -> tuple[int, OutcomeRecord] | None:
        """The first stored outcome with this request id, with its seq."""
        row = self._conn.execute(
            "SELECT seq, record FROM outcomes WHERE request_id = ? ORDER BY seq LIMIT 1", (request_id,)
        ).fetchone()
        return None if row is None else (int(row[0]), OutcomeRecord.from_stored(orjson.loads(row[1])))

    def add_feedback(
        self, outcome_seq: int, record: OutcomeRecord, reward: float, ts: float, late: bool
    ) -> bool:
        """Attach `reward` to a stored outcome; False if that request already has feedback."""
        try:
            with self._conn:
                self._conn.execute(
                    "INSERT INTO feedback (request_id, outcome_seq, experiment, reward, ts, late) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (record.request_id, outcome_seq, record.experiment, reward, ts, int(late)),
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def read_feedback(
        self, experiment: str, after_seq: int = 0, limit: int = 10_000
    ) -> list[tuple[int, OutcomeRecord]]:
        """Timely feedback after `after_seq`: (feedback seq, the outcome with its reward filled in)."""
        cur = self._conn.execute(
            "SELECT f.seq, f.reward, o.record FROM feedback f JOIN outcomes o ON o.seq = f.outcome_seq "
            "WHERE f.experiment = ? AND f.seq > ? AND f.late = 0 ORDER BY f.seq LIMIT ?",
            (experiment, after_seq, limit),
        )
        out: list[tuple[int, OutcomeRecord]] = []
        for seq, reward, raw in cur:
            rec = OutcomeRecord.from_stored(orjson.loads(raw))
            rec.reward = float(reward)
            out.append((int(seq), rec))
        return out

    def feedback_counts(self, experiment: str) -> dict[str, int]:
        """Feedback received for `experiment`: timely and late."""
        rows = self._conn.execute(
            "SELECT late, COUNT(*) FROM feedback WHERE experiment = ? GROUP BY late", (experiment,)
        ).fetchall()
        counts = {"timely": 0, "late": 0}
        for late, n in rows:
            counts["late" if late else "timely"] = int(n)
        return counts

    def max_seq(self, experiment: str) -> int:
        """The newest seq stored for `experiment` (0 if none)."""
        row = self._conn.execute(
            "SELECT MAX(seq) FROM outcomes WHERE experiment = ?", (experiment,)
        ).fetchone()
        return int(row[0] or 0)

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
