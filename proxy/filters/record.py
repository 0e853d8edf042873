"""`record`: one outcome record per routed request that is an outcome of its experiment (by default every
request but the protocols' health and metadata reads: experiments.protocol_paths), whatever happened
downstream. Records carry the request's method and path.

Records are handed to the sink without waiting; the sink counts what it cannot keep. Responses of
experiments with a `reward_mean` goal carry the record's feedback token (proxy.feedback.token).
A streamed answer is recorded when its stream ends (complete, failed after the first byte, or stopped by the
client), with what was sent: bytes, and for `text/event-stream` the number of events. An OpenAI-compatible
completion (experiments.protocol_paths.is_completion_call) adds its token facts: from a stream `ttft_ms`,
`itl_ms`, `output_tokens` and `finish_reason` (experiments.openai_stream, fed as the chunks pass), from a
whole JSON answer `output_tokens` and `finish_reason`.
Usage: filters = [route, Record(sink, tokens=tokens), ...]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from experiments.model import Experiment
from experiments.openai_stream import CompletionStream, completion_facts
from experiments.outcome import OutcomeRecord
from experiments.protocol_paths import is_completion_call, outcome_wanted
from proxy.dataplane.chain import SKIP, Stage, wrapped
from proxy.dataplane.errors import OutriderError, UpstreamError
from proxy.dataplane.exchange import Exchange, Reply
from proxy.dataplane.stream_tap import CLOSED, COMPLETE, Outcome, SseCounter, TappedStream
from proxy.feedback.token import HEADER as FEEDBACK_TOKEN
from proxy.feedback.token import FeedbackTokens, reward_range, subject_of

EVENT_STREAM = "text/event-stream"


def status_error(experiment: Experiment, status: int) -> str | None:
    """The error class of an upstream answer's status: 5xx always, others as `spec.outcomes.errorStatuses`."""
    if status >= 500:
        return "upstream_5xx"
    rule = experiment.outcomes
    if rule is not None and status in rule.error_statuses:
        return f"upstream_{status // 100}xx"
    return None


def is_event_stream(reply: Reply) -> bool:
    """Whether the answer is a server-sent event stream."""
    return reply.content_type().lower().startswith(EVENT_STREAM)


class Submits(Protocol):
    """Where records go (`experiments.sink.OutcomeSink`): it takes one without waiting."""

    def submit(self, record: OutcomeRecord) -> bool: ...


class Record:
    """Writes the outcome of every request that `route` assigned to an experiment."""

    def __init__(
        self,
        sink: Submits,
        clock: Callable[[], float] = time.monotonic,
        tokens: FeedbackTokens | None = None,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.tokens = tokens
        """Issues `x-outrider-feedback-token` (None: never)."""

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        """Run the rest of the chain and record its result (reply, error or client disconnect)."""
        return await wrapped(self, ex, call_next)

    def before(self, ex: Exchange) -> object:
        """Whether this request is an outcome (SKIP: outside experiments, or a health/metadata read); issues
        its feedback token."""
        a = ex.assignment
        inbound = ex.inbound
        if a is None or not outcome_wanted(a.experiment, inbound.method, inbound.path.partition("?")[0]):
            return SKIP
        if self.tokens is not None and reward_range(a.experiment) is not None:
            ex.extra[FEEDBACK_TOKEN] = self.tokens.issue(
                ex.inbound.request_id, a.experiment.name, a.unit, subject_of(ex.principal)
            )
        return True

    def failed(self, ex: Exchange, state: object, err: BaseException) -> None:
        """An error before any answer: its record (an internal error is not an outcome: none)."""
        if isinstance(err, UpstreamError):
            self._emit(ex, err.status, err.error_class)
        elif isinstance(err, OutriderError):
            self._emit(ex, err.status, err.code)
        elif isinstance(err, asyncio.CancelledError):
            self._emit(ex, 0, "client_disconnect")

    def after(self, ex: Exchange, state: object, reply: Reply) -> Reply:
        """The answer's record (a stream's when it ends)."""
        a = ex.assignment
        assert a is not None
        inbound = ex.inbound
        if reply.stream is not None:
            reply.stream = self._recorded(ex, reply)
            return reply
        error = status_error(a.experiment, reply.status)
        events: int | None = None
        tokens: dict[str, Any] = {}
        if is_event_stream(reply):
            counter = self._counter(ex)
            counter.feed(reply.body)
            if isinstance(counter, CompletionStream):
                counter.close()
                tokens = self._stream_facts(ex, counter)
            events = counter.events
        elif is_completion_call(inbound.method, inbound.path.partition("?")[0]):
            facts = completion_facts(reply.body)
            tokens = {"output_tokens": facts.output_tokens, "finish_reason": facts.finish_reason}
        self._emit(ex, reply.status, error, len(reply.body), events, tokens)
        return reply

    def _counter(self, ex: Exchange) -> SseCounter | CompletionStream:
        """What reads an event stream: the token reader for completions, else the event counter."""
        if is_completion_call(ex.inbound.method, ex.inbound.path.partition("?")[0]):
            return CompletionStream(self.clock)
        return SseCounter()

    def _stream_facts(self, ex: Exchange, tap: CompletionStream) -> dict[str, Any]:
        """The record's token fields from a completion stream read to its end (or as far as it went)."""
        first, last, n = tap.first_s, tap.last_s, tap.content_events
        return {
            "ttft_ms": None if first is None else (first - ex.inbound.received_mono) * 1000.0,
            "itl_ms": None if first is None or last is None or n < 2 else (last - first) * 1000.0 / (n - 1),
            "output_tokens": tap.output_tokens,
            "finish_reason": tap.finish_reason,
        }

    def _recorded(self, ex: Exchange, reply: Reply) -> TappedStream:
        """The reply's stream, recording the outcome when it ends."""
        assert reply.stream is not None
        status = reply.status
        counter = self._counter(ex) if is_event_stream(reply) else None

        def ended(outcome: Outcome, sent: int) -> None:
            if outcome == COMPLETE:
                error = status_error(ex.assignment.experiment, status) if ex.assignment else None
            elif outcome == CLOSED or isinstance(outcome, (asyncio.CancelledError, ConnectionError)):
                error = "client_disconnect"
            elif isinstance(outcome, UpstreamError):  # after the first byte: the status stays what was sent
                error = outcome.error_class
            else:
                error = type(outcome).__name__
            tokens: dict[str, Any] = {}
            if isinstance(counter, CompletionStream):
                counter.close()
                tokens = self._stream_facts(ex, counter)
            self._emit(ex, status, error, sent, counter.events if counter else None, tokens)

        return TappedStream(reply.stream, ended, counter.feed if counter else None)

    def _emit(
        self,
        ex: Exchange,
        status: int,
        error: str | None,
        bytes_out: int | None = None,
        events: int | None = None,
        tokens: dict[str, Any] | None = None,
    ) -> None:
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
            ttfb_ms=ex.ttfb_ms,
            bytes_out=bytes_out,
            events=events,
            method=inbound.method,
            path=inbound.path.partition("?")[0],
            **(tokens or {}),
        )
        if ex.pair is not None:  # written once the shadows have answered too (bounded by their timeout)
            ex.pair.finish_with(record, self.sink.submit)
        else:
            self.sink.submit(record)
