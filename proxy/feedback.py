"""`POST /outrider/v1/feedback {"request_id", "reward"}`: join a reward to a stored outcome.

Unknown id → 404, duplicate → 409, after the experiment's feedback window → 422 (stored as late, counted,
never used by the statistics). A terminal stage: it runs behind the same edge (and later auth) as traffic.
Usage: stage = Feedback(store_worker, sink, router, metrics); reply = await stage(exchange)
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
from multidict import CIMultiDict

from experiments.outcome import OutcomeRecord
from experiments.sink import OutcomeSink
from experiments.sqlite_store import SqliteOutcomeStore
from proxy.errors import BadRequest, OutriderError
from proxy.exchange import Exchange, Reply
from proxy.metrics import Metrics
from proxy.router import Router

PATH = "/outrider/v1/feedback"
DEFAULT_WINDOW_S = 3600.0
T = TypeVar("T")


class UnknownRequest(OutriderError):
    """No outcome with that request id."""

    status = 404
    code = "unknown_request"


class DuplicateFeedback(OutriderError):
    """That request already has feedback."""

    status = 409
    code = "duplicate_feedback"


class LateFeedback(OutriderError):
    """Feedback after the experiment's window closed."""

    status = 422
    code = "feedback_late"


def parse(body: bytes) -> tuple[str, float]:
    """(request_id, reward) from the JSON body, or BadRequest saying what is wrong."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BadRequest(f"body is not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise BadRequest("body must be a JSON object")
    rid, reward = doc.get("request_id"), doc.get("reward")
    if not isinstance(rid, str) or not rid:
        raise BadRequest("request_id must be a non-empty string")
    if isinstance(reward, bool) or not isinstance(reward, int | float) or not math.isfinite(reward):
        raise BadRequest("reward must be a finite number")
    return rid, float(reward)


class Feedback:
    """Terminal stage for the feedback endpoint."""

    def __init__(
        self,
        store: SqliteOutcomeStore,
        sink: OutcomeSink,
        router: Router,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.sink, self.router, self.metrics, self.clock = store, sink, router, metrics, clock
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedback-db")

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    async def __call__(self, ex: Exchange) -> Reply:
        """Validate, find the outcome (waiting briefly for one still in the queue), store the reward."""
        if ex.inbound.method != "POST":
            raise BadRequest("feedback must be POSTed")
        rid, reward = parse(ex.inbound.body)
        found = await self._find(rid)
        if found is None:
            self.metrics.feedback.labels("unknown").inc()
            raise UnknownRequest(f"no outcome recorded for request_id {rid!r}")
        seq, record = found
        now = self.clock()
        late = now - record.ts > self._window(record)
        if not await self._db(self.store.add_feedback, seq, record, reward, now, late):
            self.metrics.feedback.labels("duplicate").inc()
            raise DuplicateFeedback(f"request_id {rid!r} already has feedback")
        self.metrics.feedback.labels("late" if late else "accepted").inc()
        if late:
            raise LateFeedback(
                f"feedback arrived {now - record.ts:.0f}s after the request; the window is closed"
            )
        body = orjson.dumps({"request_id": rid, "experiment": record.experiment, "variant": record.variant})
        return Reply(200, CIMultiDict({"Content-Type": "application/json"}), body)

    async def _find(self, rid: str) -> tuple[int, OutcomeRecord] | None:
        for _ in range(20):  # a just-answered request may still be queued: wait for a few flushes (≤ 1 s)
            found = await self._db(self.store.find, rid)
            if found is not None or self.sink.pending == 0:
                return found
            await asyncio.sleep(0.05)
        return None

    def _window(self, record: OutcomeRecord) -> float:
        try:
            analysis = self.router.get(record.experiment).experiment.analysis
        except KeyError:
            return DEFAULT_WINDOW_S
        return analysis.feedback_window_s if analysis is not None else DEFAULT_WINDOW_S

    def close(self) -> None:
        """Stop the worker thread."""
        self._worker.shutdown(wait=True)
