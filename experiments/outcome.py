"""The outcome record (docs/design.md): one per routed request, written by `record`, read by `analysis`.

Usage: rec = OutcomeRecord(request_id=..., ...); line = rec.to_json()
Field names are a contract (JSON Lines export, `outrider analyze`); more may be added, none renamed. Their
order is one too: the SQLite store keeps a record as a row (`FIELDS` order, `row_of`), so new fields go at the
end only (tests/experiments/test_sqlite_store.py::test_the_order_of_the_fields_only_grows pins it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from operator import attrgetter
from typing import Any

import orjson


@dataclass(slots=True)
class OutcomeRecord:
    """What happened to one request routed by an experiment."""

    request_id: str
    ts: float
    experiment: str
    variant: str
    p_variant: float
    status: int
    error: str | None
    latency_ms: float
    upstream_ms: float
    unit: str | None
    shadows: list[dict[str, Any]] = field(default_factory=list)
    reward: float | None = None
    pinned: bool = False
    state_version: int = 0
    ttfb_ms: float | None = None
    """From the request's arrival to the upstream's first answer byte (None: no byte came)."""
    bytes_out: int | None = None
    """Body bytes sent to the client (None: the answer was outrider's own, e.g. an error)."""
    events: int | None = None
    """Server-sent events in the body, for `text/event-stream` answers only."""
    method: str | None = None
    """The request's method (None in records written before this field)."""
    path: str | None = None
    """The request's path as routed (normalised, without its query)."""
    ttft_ms: float | None = None
    """Streamed completions (OpenAI-compatible paths): from the request's arrival to the first event with
    content (None: not such a stream, or no content came)."""
    itl_ms: float | None = None
    """Streamed completions: the mean gap between content events (None: fewer than two)."""
    output_tokens: int | None = None
    """Completions: `usage.completion_tokens` when the answer has it, else (streams) the content events."""
    finish_reason: str | None = None
    """Completions: the last `finish_reason` the answer gave (`stop`, `length`, ...)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with the contract's field names."""
        return asdict(self)

    def to_json(self) -> bytes:
        """One JSON document (no trailing newline)."""
        return orjson.dumps(self)

    @classmethod
    def from_row(cls, row: list[Any]) -> OutcomeRecord:
        """Inverse of `row_of`: a row of `FIELDS` values (a shorter one, written before fields were added,
        takes their defaults; a longer one, from a newer version, loses what this version does not know)."""
        return cls(*row[: len(FIELDS)])

    @classmethod
    def from_stored(cls, doc: list[Any] | dict[str, Any]) -> OutcomeRecord:
        """A record as a store keeps it: a row, or (older stores) a dict."""
        return cls.from_row(doc) if isinstance(doc, list) else cls.from_dict(doc)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutcomeRecord:
        """Inverse of `to_dict`; ignores fields this version does not know."""
        try:
            return cls(**data)  # the common case (a record this version wrote): no filtering pass
        except TypeError:
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            return cls(**known)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(OutcomeRecord))
"""The record's fields in their order (append-only)."""
row_of: Any = attrgetter(*FIELDS)
"""`row_of(record)`: its values in `FIELDS` order, as a tuple (a C call: the SQLite writer's per-record cost).
Typed Any: attrgetter of many names has no precise type."""


def as_dict(doc: list[Any] | dict[str, Any]) -> dict[str, Any]:
    """A stored record (a row, or a dict) as the contract's dict, for export."""
    if isinstance(doc, dict):
        return doc
    if len(doc) == len(FIELDS):
        return dict(zip(FIELDS, doc, strict=True))
    return OutcomeRecord.from_row(doc).to_dict()  # another version's row: defaults, or fields dropped
