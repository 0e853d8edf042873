"""`mirror` with a real dispatcher and a real shadow server on 127.0.0.1:0: what a copy carries (no client
credentials unless declared), the compare pool's bound (dropped as compare_busy, the invariant kept), and
answers over the cap. The circuit's recovery, which needs time to pass, is in test_mirror_copies (a clock)."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import numpy as np
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from experiments.model import CanaryStrategy, Experiment, ShadowSpec, UnitKey, Variant
from experiments.outcome import OutcomeRecord
from proxy.dataplane.chain import Stage
from proxy.dataplane.exchange import Assignment, Exchange, Inbound, Reply
from proxy.filters.mirror import Mirror
from shadow.compare.answer import Answer
from shadow.compare.base import Comparison
from shadow.compare.pool import CompareJob
from shadow.dispatch import ShadowDispatcher
from shadow.limits import CompareLimits, ShadowLimits

ANSWER = orjson.dumps({"outputs": [{"name": "p", "shape": [1, 2], "datatype": "FP32", "data": [0.2, 0.8]}]})
CLIENT_HEADERS = {
    "Authorization": "Bearer secret-jwt",
    "Cookie": "session=abc",
    "X-Api-Key": "k-123",
    "X-Amz-Security-Token": "aws",
    "X-Tenant-Token": "tenant",
    "Content-Type": "application/json",
    "X-User-Id": "u1",
    "Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "Inference-Header-Content-Length": "120",
}


class ShadowServer:
    """A shadow that records the headers of each copy and answers `answer` (`ANSWER` unless a test sets it,
    with its headers), or hangs while `failing`."""

    def __init__(self) -> None:
        self.seen: list[CIMultiDictProxy[str]] = []
        self.failing = False
        self.answer = Answer(ANSWER)
        self.url = ""
        self.runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(request.headers)
        await request.read()
        if self.failing:
            await asyncio.sleep(1.0)  # the subject: a shadow that hangs past its timeout
        headers = {"Content-Type": "application/json", **self.answer.headers}
        return web.Response(body=self.answer.body, headers=headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"


@pytest.fixture
async def shadow() -> AsyncIterator[ShadowServer]:
    server = ShadowServer()
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


@pytest.fixture
async def dispatcher() -> AsyncIterator[ShadowDispatcher]:
    made = ShadowDispatcher(
        ShadowLimits(workers=2, breaker_open_s=0.2, compare=CompareLimits(queue=2, mode="thread"))
    )
    runner = asyncio.create_task(made.run())
    await asyncio.sleep(0)  # one loop turn: the runner starts
    yield made
    await made.close(2.0)
    await asyncio.wait_for(runner, 5.0)


def experiment(shadow_url: str, spec: ShadowSpec) -> Experiment:
    return Experiment(
        name="e",
        source="t",
        path_prefix="/v2/models/m",
        variants=(
            Variant("stable", "stable", "http://127.0.0.1:1"),
            Variant("int8", "shadow", shadow_url),
        ),
        unit=UnitKey("header", "x-user-id"),
        salt="s",
        strategy=CanaryStrategy((10.0,)),
        shadow=spec,
    )


def exchange(exp: Experiment, headers: dict[str, str] = CLIENT_HEADERS) -> Exchange:
    inbound = Inbound(
        "POST",
        "/v2/models/m/infer",
        CIMultiDictProxy(CIMultiDict(headers)),
        b"{}",
        "127.0.0.1",
        time.time(),
        time.monotonic(),
        "rid",
    )
    ex = Exchange(inbound)
    ex.assignment = Assignment(exp, exp.stable, 1.0, None, 0)
    return ex


async def primary(ex: Exchange) -> Reply:
    return Reply(200, CIMultiDict({"Content-Type": "application/json"}), ANSWER)


async def mirrored(mirror: Mirror, ex: Exchange, answer: Stage = primary) -> OutcomeRecord:
    """Run the mirror and the primary (`answer`); the record once the pair is complete."""
    await mirror(ex, answer)
    records: list[OutcomeRecord] = []
    assert ex.pair is not None
    rec = OutcomeRecord(
        request_id="rid",
        ts=0.0,
        experiment="e",
        variant="stable",
        p_variant=1.0,
        status=200,
        error=None,
        latency_ms=1.0,
        upstream_ms=1.0,
        unit=None,
    )
    ex.pair.finish_with(rec, records.append)
    for _ in range(200):
        if records:
            return records[0]
        await asyncio.sleep(0.01)
    raise AssertionError("the pair never completed")


def invariant(d: ShadowDispatcher) -> bool:
    return d.eligible == d.enqueued + sum(d.dropped.values()) + d.sampled_out


async def test_copies_carry_no_client_credentials(shadow: ShadowServer, dispatcher: ShadowDispatcher) -> None:
    mirror = Mirror(dispatcher)
    record = await mirrored(mirror, exchange(experiment(shadow.url, ShadowSpec())))
    assert record.shadows[0]["status"] == 200
    (seen,) = shadow.seen
    for name in ("Authorization", "Cookie", "X-Api-Key", "X-Amz-Security-Token", "X-Tenant-Token"):
        assert name not in seen, name
    for name in ("Content-Type", "X-User-Id", "Traceparent", "Inference-Header-Content-Length"):
        assert seen[name] == CLIENT_HEADERS[name]
    assert seen["x-outrider-shadow"] == "1"
    assert seen["X-Request-Id"] == "rid"


async def test_declared_headers_reach_the_shadows(shadow: ShadowServer, dispatcher: ShadowDispatcher) -> None:
    spec = ShadowSpec(forward_headers=frozenset({"authorization", "x-tenant-token"}))
    await mirrored(Mirror(dispatcher), exchange(experiment(shadow.url, spec)))
    (seen,) = shadow.seen
    assert seen["Authorization"] == "Bearer secret-jwt"
    assert seen["X-Tenant-Token"] == "tenant"
    assert "Cookie" not in seen
    assert "X-Api-Key" not in seen


async def test_a_full_compare_pool_drops_copies_that_need_a_comparison(
    shadow: ShadowServer, dispatcher: ShadowDispatcher
) -> None:
    def slow(primary: object, shadow: object) -> Comparison:
        time.sleep(0.3)  # the subject: a comparison that holds its place in the pool
        return Comparison(agree=None)

    blocked: list[dict[str, Comparison]] = []
    # Two comparisons in the pool (its bound), held there by a slow comparator.
    dispatcher.comparisons.put(
        CompareJob(slow, Answer(b""), {"a": Answer(b""), "b": Answer(b"")}, blocked.append)
    )
    compared = experiment(shadow.url, ShadowSpec(compare="oip-top1"))
    uncompared = replace(compared, name="plain", shadow=ShadowSpec(compare="none"))
    mirror = Mirror(dispatcher)
    busy = await mirrored(mirror, exchange(compared))
    assert busy.shadows == [
        {"variant": "int8", "status": 0, "error": "dropped:compare_busy", "latency_ms": 0.0}
    ]
    plain = await mirrored(mirror, exchange(uncompared))  # needs no comparison: sent
    assert plain.shadows[0]["status"] == 200
    assert dispatcher.dropped == {"compare_busy": 1}
    assert (dispatcher.eligible, dispatcher.enqueued) == (2, 1)
    assert invariant(dispatcher)
    for _ in range(100):
        if blocked:
            break
        await asyncio.sleep(0.01)
    ok = await mirrored(mirror, exchange(compared))  # room again
    assert ok.shadows[0]["agree"] is True
    assert invariant(dispatcher)
    assert dispatcher.snapshot()["compare_max_backlog"] == 2


async def test_an_answer_over_the_cap_is_not_compared_and_does_not_open_the_circuit(
    shadow: ShadowServer,
) -> None:
    d = ShadowDispatcher(ShadowLimits())
    runner = asyncio.create_task(d.run())
    try:
        mirror = Mirror(d)
        exp = experiment(shadow.url, ShadowSpec(compare="oip-top1", max_body_bytes=len(ANSWER) - 1))
        records = [await mirrored(mirror, exchange(exp)) for _ in range(7)]  # more than breaker_failures
    finally:
        await d.close(2.0)
        await asyncio.wait_for(runner, 5.0)
    assert {r.shadows[0]["error"] for r in records} == {"response_too_large"}
    assert {r.shadows[0]["status"] for r in records} == {200}
    assert all("agree" not in r.shadows[0] for r in records)
    assert len(shadow.seen) == 7
    assert d.results == {"response_too_large": 7}


async def test_a_request_over_the_shadow_cap_is_recorded_as_not_mirrored(
    shadow: ShadowServer, dispatcher: ShadowDispatcher
) -> None:
    exp = experiment(shadow.url, ShadowSpec(compare="oip-top1", max_body_bytes=1))
    exp = replace(exp, variants=(*exp.variants, Variant("fp16", "shadow", shadow.url)))
    record = await mirrored(Mirror(dispatcher), exchange(exp))  # its body, b"{}", is 2 bytes
    entries = [(e["variant"], e["status"], e["error"], e.get("skipped")) for e in record.shadows]
    assert entries == [(v, 0, "dropped:body_too_large", "too_large") for v in ("fp16", "int8")]
    assert shadow.seen == []
    assert dispatcher.dropped == {"body_too_large": 2}
    assert invariant(dispatcher)
    under = await mirrored(Mirror(dispatcher), exchange(replace(exp, shadow=ShadowSpec(compare="oip-top1"))))
    assert [e["agree"] for e in under.shadows] == [True, True]


async def test_gzip_and_binary_answers_are_compared_with_their_headers(
    shadow: ShadowServer, dispatcher: ShadowDispatcher
) -> None:
    doc = orjson.loads(ANSWER)
    json_part = orjson.dumps(
        {
            "outputs": [
                {"name": "p", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}
            ]
        }
    )
    packed = gzip.compress(json_part + np.asarray(doc["outputs"][0]["data"], dtype="<f4").tobytes())
    shadow.answer = Answer(
        packed, {"Content-Encoding": "gzip", "Inference-Header-Content-Length": str(len(json_part))}
    )
    record = await mirrored(
        Mirror(dispatcher), exchange(experiment(shadow.url, ShadowSpec(compare="oip-numeric")))
    )
    assert (record.shadows[0]["agree"], record.shadows[0]["rows_agree"]) == (True, 1)

    async def gzip_primary(ex: Exchange) -> Reply:  # the primary encoded too, the shadow in JSON
        headers = CIMultiDict({"Content-Type": "application/json", "Content-Encoding": "gzip"})
        return Reply(200, headers, gzip.compress(ANSWER))

    shadow.answer = Answer(ANSWER)
    exp = experiment(shadow.url, ShadowSpec(compare="oip-top1"))
    record = await mirrored(Mirror(dispatcher), exchange(exp), gzip_primary)
    assert record.shadows[0]["agree"] is True


async def test_a_primary_answer_over_the_shadow_cap_is_not_compared(
    shadow: ShadowServer, dispatcher: ShadowDispatcher
) -> None:
    exp = experiment(shadow.url, ShadowSpec(compare="oip-top1", max_body_bytes=len(ANSWER) - 1))
    record = await mirrored(Mirror(dispatcher), exchange(exp))
    (entry,) = record.shadows
    assert entry["error"] == "response_too_large"  # the shadow's answer is as large: not read either
    shadow.answer = Answer(b"{}")
    (entry,) = (await mirrored(Mirror(dispatcher), exchange(exp))).shadows
    assert entry["compare_error"] == (
        f"primary answer over spec.shadow.maxBodyBytes ({len(ANSWER) - 1} bytes): not compared"
    )
