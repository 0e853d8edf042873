"""The stores behind one interface: `sqlite` (embedded, the default) or `redis://…` (a fleet of replicas).

Usage:
    outcomes = open_outcomes(settings.store, settings.data_dir)   # OutcomeStore, blocking: use a thread
    states = open_states(settings.store, settings.data_dir)       # StateStore, blocking: use a thread
The setting `store` (`--store`, `$OUTRIDER_STORE`) is `sqlite` or `redis://HOST:PORT/DB` (`rediss://`,
`unix://` too). Each call opens its own connection: one per role per process (the sink's writer, the
controllers' reader, the feedback's reader, the state keeper, the state watch).
    feedback = open_feedback(settings.store, settings.data_dir)  # FeedbackStore: the feedback endpoint's
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from experiments.outcome import OutcomeRecord
from experiments.state import ExperimentState

SQLITE = "sqlite"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def is_redis(store: str) -> bool:
    """Whether the setting names a Redis store."""
    return store.startswith(REDIS_SCHEMES)


def check_store(value: str) -> str:
    """The setting as given if it is valid, else ValueError saying what is expected."""
    if value == SQLITE or is_redis(value):
        return value
    raise ValueError(f"{value!r} is neither `sqlite` nor a Redis URL like redis://127.0.0.1:6379/0")


class OutcomeStore(Protocol):
    """Appends outcome records and reads them back in store order (SqliteOutcomeStore, RedisOutcomeStore)."""

    def write(self, batch: Sequence[OutcomeRecord]) -> None:
        """Append `batch`, all or nothing."""
        ...

    def read_after(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        """(seq, record) after `after_seq`, in store order."""
        ...

    def read_feedback(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        """Timely rewards after `after_seq`."""
        ...

    def iter_raw(self, experiment: str | None = None, page: int = 10_000) -> Iterator[bytes]:
        """Every stored record as JSON bytes (the export)."""
        ...

    def feedback_counts(self, experiment: str) -> dict[str, int]:
        """Feedback received: timely and late."""
        ...

    def max_seq(self, experiment: str) -> int:
        """The newest seq of `experiment` (0 if none)."""
        ...

    def count(self, experiment: str | None = None) -> int:
        """Number of stored records."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class StoreUnavailable(Exception):
    """The store could not be reached now (the feedback endpoint answers 503: try again)."""


class FeedbackStore(Protocol):
    """Finds the outcome of a request id and stores its reward once (SqliteOutcomeStore, RedisFeedbackStore;
    the latter raises StoreUnavailable when Redis cannot be reached)."""

    def find(self, request_id: str) -> tuple[int, OutcomeRecord] | None:
        """(seq, record) of the first stored outcome with this request id."""
        ...

    def add_feedback(
        self, outcome_seq: int, record: OutcomeRecord, reward: float, ts: float, late: bool
    ) -> bool:
        """Store the reward of the outcome at `outcome_seq`; False if it has one already."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


class StateStore(Protocol):
    """Versioned experiment states (SqliteStateStore, RedisStateStore)."""

    def load(self, experiment: str) -> ExperimentState | None:
        """The stored state, or None."""
        ...

    def versions(self) -> dict[str, int]:
        """The stored version of every experiment."""
        ...

    def save(self, state: ExperimentState) -> bool:
        """Store `state` unless a version ≥ its own is stored; True if stored."""
        ...

    def save_config(self, experiment: str, source: str, text: str) -> None:
        """Keep the experiment file in force."""
        ...

    def load_config(self, experiment: str) -> tuple[str, str] | None:
        """(source, text) of the experiment file last run."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


def open_outcomes(
    store: str,
    data_dir: Path,
    *,
    readonly: bool = False,
    reward_window: Callable[[str], float | None] | None = None,
) -> OutcomeStore:
    """The outcome store the setting names (blocking: connects or opens the file). `reward_window`: the
    feedback window of the experiments whose records the writer indexes by request id (Redis; SQLite has an
    index on the column)."""
    if is_redis(store):
        from experiments.redis_store import RedisOutcomeStore

        if reward_window is None:
            return RedisOutcomeStore(store)
        return RedisOutcomeStore(store, reward_window=reward_window)
    from experiments.sqlite_store import DB_NAME, SqliteOutcomeStore

    return SqliteOutcomeStore(data_dir / DB_NAME, readonly=readonly)


def open_feedback(store: str, data_dir: Path) -> FeedbackStore:
    """Where the feedback endpoint finds outcomes and stores rewards (blocking)."""
    if is_redis(store):
        from experiments.redis_feedback import RedisFeedbackStore

        return RedisFeedbackStore(store)
    from experiments.sqlite_store import DB_NAME, SqliteOutcomeStore

    return SqliteOutcomeStore(data_dir / DB_NAME)


def open_states(store: str, data_dir: Path) -> StateStore:
    """The state store the setting names (blocking)."""
    if is_redis(store):
        from experiments.redis_state import RedisStateStore

        return RedisStateStore(store)
    from experiments.sqlite_store import DB_NAME
    from experiments.state_store import SqliteStateStore

    return SqliteStateStore(data_dir / DB_NAME)
