"""`ShadowDispatcher` without sockets: a scripted `Send` stands for the shadow server and a hand-moved clock
for time, so the queue bound, the workers, the circuit breaker and shutdown are checked exactly, at once."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from multidict import CIMultiDict

from experiments.outcome import OutcomeRecord
from shadow.dispatch import ShadowDispatcher, ShadowJob, shadow_host
from shadow.limits import CompareLimits, ShadowLimits
from shadow.pairing import Pair, ShadowResult
from tests.support.wait import wait_until

OK = ShadowResult(200, None, 1.0, b"{}")
TIMEOUT = ShadowResult(0, "timeout", 1000.0)


class Clock:
    """Monotonic time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedShadow:
    """A `Send`: answers each copy with the next scripted result (then `OK`) once `gate` is open."""

    def __init__(self, *results: ShadowResult | Exception) -> None:
        self.jobs: list[ShadowJob] = []
        self.results: deque[ShadowResult | Exception] = deque(results)
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, job: ShadowJob) -> ShadowResult:
        self.jobs.append(job)
        await self.gate.wait()
        result = self.results.popleft() if self.results else OK
        if isinstance(result, Exception):
            raise result
        return result


class Copy:
    """One mirrored request: its job for one shadow, and the shadow entry of its record once written."""

    def __init__(self, variant: str = "int8") -> None:
        self.pair = Pair([variant], None)
        self.entry: dict[str, Any] | None = None
        self.job = ShadowJob(
            variant, "http://shadow/v2/models/m/infer", "POST", CIMultiDict(), b"{}", self.pair, 1.0
        )
        self.pair.primary_done(200, b"{}")
        self.pair.finish_with(record(), self._written)

    def _written(self, rec: OutcomeRecord) -> None:
        (self.entry,) = rec.shadows

    async def written(self) -> dict[str, Any]:
        await wait_until(lambda: self.entry is not None, 5.0)
        assert self.entry is not None
        return self.entry


def record() -> OutcomeRecord:
    return OutcomeRecord("r", 0.0, "e", "stable", 1.0, 200, None, 1.0, 1.0, None)


@asynccontextmanager
async def running(
    send: ScriptedShadow, clock: Clock | None = None, **limits: Any
) -> AsyncIterator[ShadowDispatcher]:
    settings = ShadowLimits(**{"workers": 1, "compare": CompareLimits(mode="thread"), **limits})
    dispatcher = ShadowDispatcher(settings, send=send, clock=clock or Clock())
    runner = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        send.gate.set()
        await dispatcher.close(2.0)
        await asyncio.wait_for(runner, 5.0)


async def test_a_copy_goes_out_through_the_given_send_and_its_answer_reaches_the_record() -> None:
    send = ScriptedShadow()
    async with running(send) as dispatcher:
        copy = Copy()
        assert dispatcher.offer(copy.job)
        assert (await copy.written())["status"] == 200
    assert send.jobs == [copy.job]
    assert (dispatcher.enqueued, dispatcher.results["ok"], dict(dispatcher.dropped)) == (1, 1, {})


async def test_a_full_queue_drops_the_copy_at_once_and_says_so() -> None:
    send = ScriptedShadow()
    send.gate.clear()  # the one worker holds its copy
    async with running(send, queue=2) as dispatcher:
        copies = [Copy() for _ in range(4)]
        assert dispatcher.offer(copies[0].job)
        await wait_until(lambda: len(send.jobs) == 1, 5.0)  # the worker took it: the queue is empty
        assert [dispatcher.offer(c.job) for c in copies[1:]] == [True, True, False]
        assert copies[3].entry == {
            "variant": "int8",
            "status": 0,
            "error": "dropped:queue_full",
            "latency_ms": 0.0,
        }
        assert (dispatcher.depth, dispatcher.max_depth, dispatcher.dropped) == (2, 2, {"queue_full": 1})
        send.gate.set()
        assert [(await c.written())["status"] for c in copies[:3]] == [200, 200, 200]
    assert dispatcher.enqueued == 3


async def test_the_circuit_opens_admits_one_probe_after_its_interval_and_closes_on_success() -> None:
    send, clock = ScriptedShadow(TIMEOUT, TIMEOUT), Clock()
    async with running(send, clock, breaker_failures=2, breaker_open_s=1.0) as dispatcher:
        for _ in range(2):
            copy = Copy()
            dispatcher.offer(copy.job)
            assert (await copy.written())["error"] == "timeout"
        assert dispatcher.refusal("int8") == "circuit_open"
        refused = Copy()
        assert not dispatcher.offer(refused.job)
        assert refused.entry is not None
        assert refused.entry["error"] == "dropped:circuit_open"
        clock.now += 0.999
        assert dispatcher.refusal("int8") == "circuit_open"
        clock.now += 0.001
        assert dispatcher.refusal("int8") is None  # the probe, admitted once ...
        assert dispatcher.refusal("int8") == "circuit_open"  # ... and no second copy while it is out
        probe = Copy()
        assert dispatcher.offer(probe.job, checked=True)  # admitted above: not checked (and refused) again
        assert (await probe.written())["status"] == 200
        assert dispatcher.refusal("int8") is None  # closed again
        assert dispatcher.refusal("int8") is None
    assert dispatcher.results == {"timeout": 2, "ok": 1}


async def test_one_shadow_circuit_does_not_touch_another() -> None:
    send, clock = ScriptedShadow(TIMEOUT), Clock()
    async with running(send, clock, breaker_failures=1) as dispatcher:
        copy = Copy("int8")
        dispatcher.offer(copy.job)
        await copy.written()
        assert (dispatcher.refusal("int8"), dispatcher.refusal("fp16")) == ("circuit_open", None)


async def test_a_failing_send_is_an_internal_result_and_the_worker_goes_on() -> None:
    send = ScriptedShadow(RuntimeError("bug"))
    async with running(send) as dispatcher:
        first, second = Copy(), Copy()
        dispatcher.offer(first.job)
        dispatcher.offer(second.job)
        assert (await first.written())["error"] == "internal"
        assert (await second.written())["status"] == 200


async def test_a_job_with_its_own_call_does_not_use_the_send() -> None:
    send = ScriptedShadow()
    called: list[str] = []

    async def grpc_call(job: ShadowJob) -> ShadowResult:
        called.append(job.method)
        return ShadowResult(200, None, 2.0, b"grpc")

    async with running(send) as dispatcher:
        copy = Copy()
        dispatcher.offer(
            ShadowJob("int8", "127.0.0.1:1", "ModelInfer", CIMultiDict(), b"", copy.pair, 1.0, via=grpc_call)
        )
        assert (await copy.written())["latency_ms"] == 2.0
    assert (called, send.jobs) == (["ModelInfer"], [])


async def test_closing_refuses_new_copies_and_drops_those_that_cannot_finish() -> None:
    send = ScriptedShadow()
    send.gate.clear()  # a hung shadow
    dispatcher = ShadowDispatcher(ShadowLimits(workers=1, compare=CompareLimits(mode="thread")), send=send)
    runner = asyncio.create_task(dispatcher.run())
    held, queued = Copy(), Copy()
    dispatcher.offer(held.job)
    await wait_until(lambda: len(send.jobs) == 1, 5.0)
    dispatcher.offer(queued.job)
    await dispatcher.close(0.05)
    assert queued.entry is not None
    assert queued.entry["error"] == "dropped:shutdown"
    assert dispatcher.refusal("int8") == "shutdown"
    runner.cancel()  # the process is going away: the copy still out is recorded as dropped
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert held.entry is not None
    assert held.entry["error"] == "dropped:shutdown"
    assert dispatcher.dropped == {"shutdown": 1}


@pytest.mark.parametrize(
    ("host", "want"),
    [
        ("models.local:8080", "models.local-shadow:8080"),
        ("models.local", "models.local-shadow"),
        ("[::1]:8080", "[::1]-shadow:8080"),
        ("[::1]", "[::1]-shadow"),
    ],
)
def test_shadow_host_follows_envoy(host: str, want: str) -> None:
    assert shadow_host(host) == want
