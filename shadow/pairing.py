"""Pairing a primary answer with its shadows' answers to the same input.

Usage:
    pair = Pair(["int8"], compare, pool, max_bytes)  # made by the mirror filter before the primary is sent
    pair.primary_done(200, body, headers)     # by the mirror filter once the primary answered
    pair.primary_too_large(200)               # ... or: its answer was over the shadow body cap
    pair.shadow_done("int8", result)          # by a shadow worker (or at once when the job was dropped)
    pair.finish_with(record, sink.submit)     # by the record filter: submits when every side is known

The outcome record is written exactly once, when the primary and every shadow are known (a shadow that hangs
is bounded by its timeout) and the answers are compared, so `shadows` in the record is always complete.
Whoever completes the pair last may be the client's request (the primary answered after the shadows): large
answers are therefore compared in the pool (`shadow.compare.pool`), which submits the record when done,
and only small ones inline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from experiments.outcome import OutcomeRecord
from shadow.compare.answer import DEFAULT_MAX_BYTES, Answer
from shadow.compare.base import Comparator, Comparison, not_comparable
from shadow.compare.none import NoComparison
from shadow.compare.pool import CompareJob, ComparePool

NOT_COMPARED = Comparison(
    agree=None, rows=0, rows_agree=0, max_abs_diff=None, max_rel_diff=None, exceed=None, detail=None
)
SKIPPED = {"dropped:body_too_large": "too_large"}
SKIPPED["dropped:no_grpc_upstream"] = "no_grpc_upstream"  # a gRPC call, a shadow without `grpcUpstream`
"""Copies never sent because of the request itself (over `spec.shadow.maxBodyBytes`), not because of
outrider's load: their entry says so in `skipped`."""


@dataclass(frozen=True, slots=True)
class ShadowResult:
    """What one shadow did with its copy."""

    status: int
    """HTTP status of the shadow's answer (0 when there was none)."""
    error: str | None
    """`timeout`, `upstream_reset`, `connect_error`, `upstream_5xx`, `response_too_large`,
    `dropped:queue_full`, ... or None."""
    latency_ms: float
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    """The answer's headers that comparators read (`shadow.compare.answer.answer_headers`)."""


class Pair:
    """One mirrored request: the primary's answer and each shadow's, joined into the outcome record."""

    __slots__ = (
        "_compare",
        "_finish",
        "_pool",
        "_primary_note",
        "_record",
        "_results",
        "_waiting",
        "max_bytes",
        "primary_answer",
        "primary_status",
    )

    def __init__(
        self,
        shadows: Sequence[str],
        compare: Comparator | None,
        pool: ComparePool | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._compare = compare
        self._pool = pool
        self.max_bytes = max_bytes
        self._waiting = set(shadows)
        self._results: dict[str, ShadowResult] = {}
        self.primary_status: int | None = None
        self.primary_answer = Answer(b"", {}, max_bytes)
        self._primary_note: str | None = None
        self._record: OutcomeRecord | None = None
        self._finish: Callable[[OutcomeRecord], Any] | None = None

    def primary_done(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        """The primary answered (status 0: it did not); `headers` are its answer's."""
        self.primary_status = status
        self.primary_answer = Answer.of(body, headers, self.max_bytes)

    def primary_too_large(self, status: int) -> None:
        """The primary answered, more than the shadow body cap: no shadow answer is compared with it."""
        self.primary_status = status
        self._primary_note = (
            f"primary answer over spec.shadow.maxBodyBytes ({self.max_bytes} bytes): not compared"
        )

    @property
    def needs_primary(self) -> bool:
        """Whether the primary's answer may still be compared (some shadow is awaited or answered)."""
        if self._compare is None or isinstance(self._compare, NoComparison):
            return False
        return bool(self._waiting) or any(r.error is None for r in self._results.values())

    def shadow_done(self, variant: str, result: ShadowResult) -> None:
        """A shadow finished (or was dropped); submits the record if it was the last one awaited."""
        self._results[variant] = result
        self._waiting.discard(variant)
        self._maybe_submit()

    def finish_with(self, record: OutcomeRecord, submit: Callable[[OutcomeRecord], Any]) -> None:
        """The primary's record is ready; it goes to `submit` once every shadow is known."""
        self._record, self._finish = record, submit
        self._maybe_submit()

    @property
    def complete(self) -> bool:
        """Every shadow has reported."""
        return not self._waiting

    def _maybe_submit(self) -> None:
        if self._waiting or self._record is None or self._finish is None:
            return
        record, submit = self._record, self._finish
        self._record = self._finish = None  # exactly once
        primary, self.primary_answer = self.primary_answer, Answer(b"")
        done = partial(self._submit, record, submit)
        compare, pool = self._compare, self._pool
        cap = self.max_bytes
        todo = {v: Answer(r.body, r.headers, cap) for v, r in self._results.items() if self._comparable(r)}
        if compare is None or not todo:
            done({})
        elif self._primary_note is not None:
            done(dict.fromkeys(todo, not_comparable(self._primary_note)))
        elif pool is not None and pool.offloads(compare, primary, todo.values()):
            pool.put(CompareJob(compare, primary, todo, done))
        elif pool is not None:
            done({v: pool.compare_inline(compare, primary, body) for v, body in todo.items()})
        else:
            done({v: compare(primary, body) for v, body in todo.items()})

    def _comparable(self, result: ShadowResult) -> bool:
        return result.error is None and self.primary_status == 200 and result.status == 200

    def _submit(
        self,
        record: OutcomeRecord,
        submit: Callable[[OutcomeRecord], Any],
        comparisons: Mapping[str, Comparison],
    ) -> None:
        record.shadows = [self._entry(v, r, comparisons.get(v)) for v, r in sorted(self._results.items())]
        self._results.clear()  # the answers' bodies are no longer needed
        submit(record)

    @staticmethod
    def _entry(variant: str, result: ShadowResult, comparison: Comparison | None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "variant": variant,
            "status": result.status,
            "error": result.error,
            "latency_ms": round(result.latency_ms, 3),
        }
        skipped = SKIPPED.get(result.error or "")
        if skipped is not None:
            entry["skipped"] = skipped
        if comparison is not None:
            entry.update(comparison.to_json())
        return entry
