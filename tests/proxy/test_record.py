"""`record` without sockets: what the outcome record of a request says for an answer, an upstream failure, an
answer whose status the experiment counts as an error, a client that went away, and a request that is not an
outcome — with the records caught in a list and time from a hand-moved clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from multidict import CIMultiDict

from experiments.model import OutcomeRule, ShadowSpec
from experiments.outcome import OutcomeRecord
from proxy.dataplane.chain import Stage
from proxy.dataplane.errors import UpstreamUnavailable
from proxy.dataplane.exchange import Exchange, Reply
from proxy.filters.record import Record
from tests.proxy.test_mirror import exchange, experiment
from tests.shadow.test_dispatch import Clock
from tests.support.inbound import changed


class Kept:
    """A sink that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[OutcomeRecord] = []

    def submit(self, record: OutcomeRecord) -> bool:
        self.records.append(record)
        return True


def request(
    method: str = "POST", path: str = "/v2/models/m/infer?trace=1", *, rule: OutcomeRule | None = None
) -> Exchange:
    exp = replace(experiment("http://127.0.0.1:3", ShadowSpec()), outcomes=rule)
    ex = exchange(exp)
    ex.inbound = changed(ex.inbound, method=method, path=path, received_mono=100.0)
    return ex


def answering(status: int, body: bytes = b'{"ok": true}') -> Stage:
    async def call_next(ex: Exchange) -> Reply:
        return Reply(status, CIMultiDict({"Content-Type": "application/json"}), body)

    return call_next


async def test_an_answer_is_recorded_with_its_status_size_latency_and_path() -> None:
    kept, clock = Kept(), Clock()
    clock.now = 100.25
    reply = await Record(kept, clock)(request(), answering(200))
    assert reply.status == 200
    (rec,) = kept.records
    assert (rec.status, rec.error, rec.bytes_out, rec.latency_ms) == (200, None, 12, 250.0)
    assert (rec.method, rec.path, rec.variant, rec.experiment) == (
        "POST",
        "/v2/models/m/infer",
        "stable",
        "e",
    )


async def test_statuses_are_errors_as_the_experiment_says() -> None:
    kept = Kept()
    record = Record(kept, Clock())
    await record(request(), answering(503))
    await record(request(), answering(404))
    await record(request(rule=OutcomeRule(error_statuses=frozenset({404}))), answering(404))
    assert [r.error for r in kept.records] == ["upstream_5xx", None, "upstream_4xx"]


async def test_an_upstream_failure_is_recorded_and_raised_on() -> None:
    kept = Kept()

    async def failing(ex: Exchange) -> Reply:
        raise UpstreamUnavailable("reset", error_class="upstream_reset")

    with pytest.raises(UpstreamUnavailable):
        await Record(kept, Clock())(request(), failing)
    assert [(r.status, r.error) for r in kept.records] == [(502, "upstream_reset")]


async def test_a_client_that_goes_away_is_recorded_as_such() -> None:
    kept = Kept()

    async def cancelled(ex: Exchange) -> Reply:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await Record(kept, Clock())(request(), cancelled)
    assert [(r.status, r.error) for r in kept.records] == [(0, "client_disconnect")]


async def test_health_and_metadata_reads_are_not_outcomes() -> None:
    kept = Kept()
    await Record(kept, Clock())(request("GET", "/v2/models/m"), answering(200))
    await Record(kept, Clock())(request("GET", "/v2/models/m/ready"), answering(200))
    assert kept.records == []


async def test_a_completion_answer_gives_its_token_facts() -> None:
    kept = Kept()
    body = b'{"choices": [{"finish_reason": "stop"}], "usage": {"completion_tokens": 7}}'
    await Record(kept, Clock())(request(path="/v1/chat/completions"), answering(200, body))
    (rec,) = kept.records
    assert (rec.output_tokens, rec.finish_reason) == (7, "stop")
