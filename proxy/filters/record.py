"""`record`: one outcome record per routed request, whatever happened downstream.

Records are handed to the sink without waiting; the sink counts what it cannot keep. Responses of
experiments with a `reward_mean` goal carry the record's feedback token (proxy.feedback_token).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from experiments.outcome import OutcomeRecord
from experiments.sink import OutcomeSink
from proxy.chain import Stage
from proxy.errors import OutriderError, UpstreamError
from proxy.exchange import Exchange, Reply
from proxy.feedback_token import HEADER as FEEDBACK_TOKEN
from proxy.feedback_token import FeedbackTokens, reward_range, subject_of


class Record:
    """Writes the outcome of every request that `route` assigned to an experiment."""

    def __init__(
        self,
        sink: OutcomeSink,
        clock: Callable[[], float] = time.monotonic,
        tokens: FeedbackTokens | None = None,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.tokens = tokens
        """Issues `x-outrider-feedback-token` (None: never)."""

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        """Run the rest of the chain and record its result (reply, error or client disconnect)."""
        a = ex.assignment
        if a is None:
            return await call_next(ex)
        if self.tokens is not None and reward_range(a.experiment) is not None:
            ex.extra[FEEDBACK_TOKEN] = self.tokens.issue(
                ex.inbound.request_id, a.experiment.name, a.unit, subject_of(ex.principal)
            )
        try:
            reply = await call_next(ex)
        except UpstreamError as err:
            self._emit(ex, err.status, err.error_class)
            raise
        except OutriderError as err:
            self._emit(ex, err.status, err.code)
            raise
        except asyncio.CancelledError:
            self._emit(ex, 0, "client_disconnect")
            raise
        self._emit(ex, reply.status, "upstream_5xx" if reply.status >= 500 else None)
        return reply

    def _emit(self, ex: Exchange, status: int, error: str | None) -> None:
        a = ex.assignment
        assert a is not None
        inbound = ex.inbound
        record = OutcomeRecord(
            request_id=inbound.request_id,
            ts=inbound.received_at,
            experiment=a.experiment.name,
            variant=a.variant.name,
            p_variant=a.p_variant,
            status=status,
            error=error,
            latency_ms=(self.clock() - inbound.received_mono) * 1000.0,
            upstream_ms=ex.upstream_ms,
            unit=a.unit,
            pinned=a.pinned,
            state_version=a.state_version,
        )
        if ex.pair is not None:  # written once the shadows have answered too (bounded by their timeout)
            ex.pair.finish_with(record, self.sink.submit)
        else:
            self.sink.submit(record)
