"""Pairing a primary answer with its shadows' answers to the same input.

Usage:
    pair = Pair(["int8"], compare, pool)      # made by the mirror filter before the primary is sent
    pair.primary_done(200, body)              # by the mirror filter once the primary answered
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
from dataclasses import dataclass
from functools import partial
from typing import Any

from experiments.outcome import OutcomeRecord
from shadow.compare.base import Comparator, Comparison
from shadow.compare.pool import CompareJob, ComparePool

NOT_COMPARED = Comparison(
    agree=None, rows=0, rows_agree=0, max_abs_diff=None, max_rel_diff=None, exceed=None, detail=None
)


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


class Pair:
    """One mirrored request: the primary's answer and each shadow's, joined into the outcome record."""

    __slots__ = (
        "_compare",
        "_finish",
        "_pool",
        "_record",
        "_results",
        "_waiting",
        "primary_body",
        "primary_status",
    )

    def __init__(
        self, shadows: Sequence[str], compare: Comparator | None, pool: ComparePool | None = None
    ) -> None:
        self._compare = compare
        self._pool = pool
        self._waiting = set(shadows)
        self._results: dict[str, ShadowResult] = {}
        self.primary_status: int | None = None
        self.primary_body = b""
        self._record: OutcomeRecord | None = None
        self._finish: Callable[[OutcomeRecord], Any] | None = None

    def primary_done(self, status: int, body: bytes) -> None:
        """The primary answered (status 0: it did not)."""
        self.primary_status, self.primary_body = status, body

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
        primary, self.primary_body = self.primary_body, b""
        done = partial(self._submit, record, submit)
        compare, pool = self._compare, self._pool
        todo = {v: r.body for v, r in self._results.items() if self._comparable(r)}
        if compare is None or not todo:
            done({})
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
        if comparison is not None:
            entry.update(comparison.to_json())
        return entry
