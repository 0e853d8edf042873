"""The outcome record (docs/design.md): one per routed request, written by `record`, read by `analysis`.

Usage: rec = OutcomeRecord(request_id=..., ...); line = rec.to_json()
Field names are a contract (JSON Lines export, `outrider analyze`); more may be added, none renamed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
    def from_dict(cls, data: dict[str, Any]) -> OutcomeRecord:
        """Inverse of `to_dict`; ignores fields this version does not know."""
        try:
            return cls(**data)  # the common case (a record this version wrote): no filtering pass
        except TypeError:
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            return cls(**known)
