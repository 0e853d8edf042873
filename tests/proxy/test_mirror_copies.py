"""`mirror` without sockets: the dispatcher sends through a scripted shadow and reads a hand-moved clock, so
what each copy is (target, headers), which requests are copied at all, and a circuit that closes again once
its shadow recovers are checked without a server or a sleep."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from experiments.model import ShadowSpec
from experiments.outcome import OutcomeRecord
from proxy.filters.mirror import Mirror
from shadow.dispatch import ShadowDispatcher
from shadow.limits import CompareLimits, ShadowLimits
from shadow.pairing import ShadowResult
from tests.proxy.test_mirror import ANSWER, exchange, experiment, invariant, primary
from tests.shadow.test_dispatch import TIMEOUT, Clock, ScriptedShadow
from tests.support.inbound import changed
from tests.support.wait import wait_until

SHADOW_URL = "http://int8.internal:9003"
ANSWERED = ShadowResult(200, None, 1.0, ANSWER, {"Content-Type": "application/json"})


@pytest.fixture
def send() -> ScriptedShadow:
    return ScriptedShadow()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def dispatcher(send: ScriptedShadow, clock: Clock) -> AsyncIterator[ShadowDispatcher]:
    limits = ShadowLimits(workers=1, breaker_open_s=1.0, compare=CompareLimits(mode="thread"))
    made = ShadowDispatcher(limits, send=send, clock=clock)
    runner = asyncio.create_task(made.run())
    yield made
    await made.close(2.0)
    await runner


async def copied(
    mirror: Mirror, spec: ShadowSpec, method: str = "POST", body: bytes = b"{}"
) -> OutcomeRecord:
    """Run the mirror and the primary on one request; its record once every shadow is known."""
    ex = exchange(experiment(SHADOW_URL, spec))
    ex.inbound = changed(ex.inbound, method=method, body=body)
    await mirror(ex, primary)
    records: list[OutcomeRecord] = []
    rec = OutcomeRecord("rid", 0.0, "e", "stable", 1.0, 200, None, 1.0, 1.0, None)
    if ex.pair is None:  # not mirrored
        return rec
    ex.pair.finish_with(rec, records.append)
    await wait_until(lambda: records, 5.0)
    return records[0]


async def test_a_copy_goes_to_the_shadow_as_a_shadow_without_credentials(
    send: ScriptedShadow, dispatcher: ShadowDispatcher
) -> None:
    send.results.append(ANSWERED)
    rec = await copied(Mirror(dispatcher), ShadowSpec(compare="oip-top1"))
    (job,) = send.jobs
    assert (job.variant, job.method, job.url) == ("int8", "POST", SHADOW_URL + "/v2/models/m/infer")
    assert (job.headers["Host"], job.headers["x-outrider-shadow"]) == ("localhost-shadow", "1")
    assert not {"Authorization", "Cookie", "X-Api-Key", "X-Amz-Security-Token"} & set(job.headers)
    assert job.headers["Traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c")
    assert (job.compared, job.timeout_s) == (True, 1.0)
    assert rec.shadows[0]["agree"] is True
    assert invariant(dispatcher)


async def test_only_declared_requests_are_copied_and_sampling_counts(
    send: ScriptedShadow, dispatcher: ShadowDispatcher
) -> None:
    mirror = Mirror(dispatcher, random.Random(1))
    await copied(mirror, ShadowSpec(), method="GET")  # not side-effect free by default: not even eligible
    assert dispatcher.eligible == 0
    await copied(mirror, ShadowSpec(sample=0.0))
    assert (dispatcher.eligible, dispatcher.sampled_out, send.jobs) == (1, 1, [])
    assert invariant(dispatcher)


async def test_a_body_over_the_cap_is_recorded_as_not_mirrored(
    send: ScriptedShadow, dispatcher: ShadowDispatcher
) -> None:
    rec = await copied(Mirror(dispatcher), ShadowSpec(max_body_bytes=4), body=b"0123456789")
    skipped = {"variant": "int8", "status": 0, "error": "dropped:body_too_large", "latency_ms": 0.0}
    assert rec.shadows == [{**skipped, "skipped": "too_large"}]
    assert send.jobs == []
    assert invariant(dispatcher)


async def test_the_circuit_closes_again_when_the_shadow_recovers(
    send: ScriptedShadow, clock: Clock, dispatcher: ShadowDispatcher
) -> None:
    mirror, spec = Mirror(dispatcher), ShadowSpec(timeout_s=0.05)
    send.results.extend([TIMEOUT] * 5)
    for _ in range(5):
        await copied(mirror, spec)  # 5 timeouts open the circuit
    dropped = await copied(mirror, spec)
    assert dropped.shadows[0]["error"] == "dropped:circuit_open"
    clock.now += 1.0  # past breaker_open_s: the next copy is the probe, and it must be sent
    probe = await copied(mirror, spec)
    assert probe.shadows[0]["status"] == 200
    after = await copied(mirror, spec)
    assert after.shadows[0]["status"] == 200
    assert len(send.jobs) == 7
    assert invariant(dispatcher)
