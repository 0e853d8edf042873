"""`Pair` with and without the compare pool: the record is written exactly once, with the comparison fields,
whichever side finishes last and wherever the comparison runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from experiments.outcome import OutcomeRecord
from shadow.compare.answer import Answer
from shadow.compare.base import Comparison, comparator
from shadow.compare.pool import ComparePool
from shadow.limits import CompareLimits
from shadow.pairing import Pair, ShadowResult
from tests.shadow.bodies import binary, gzipped, output, scores

SMALL = orjson.dumps({"outputs": [{"name": "p", "shape": [1, 2], "datatype": "FP32", "data": [0.1, 0.9]}]})
LARGE = orjson.dumps({"id": "x", "items": [{"k": i, "v": [i, str(i)]} for i in range(3000)]})


def record() -> OutcomeRecord:
    return OutcomeRecord(
        request_id="r",
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


class Submitted:
    """Collects the records handed to the sink."""

    def __init__(self) -> None:
        self.records: list[OutcomeRecord] = []
        self.arrived = asyncio.Event()

    def __call__(self, rec: OutcomeRecord) -> None:
        self.records.append(rec)
        self.arrived.set()


@pytest.fixture
async def pool() -> AsyncIterator[ComparePool]:
    made = ComparePool(CompareLimits(inline_bytes=1024, mode="thread"))
    runner = asyncio.create_task(made.run())
    await asyncio.sleep(0)  # the runner is serving
    yield made
    await made.close(5.0)
    await asyncio.wait_for(runner, 5.0)


def test_without_a_pool_the_comparison_is_inline_and_the_record_complete() -> None:
    pair = Pair(["int8", "fp16"], comparator("oip-top1"))
    sink = Submitted()
    pair.primary_done(200, SMALL)
    pair.shadow_done("int8", ShadowResult(200, None, 3.0, SMALL))
    pair.finish_with(record(), sink)
    assert sink.records == []  # fp16 has not answered
    pair.shadow_done("fp16", ShadowResult(0, "timeout", 1000.0))
    assert len(sink.records) == 1
    int8, fp16 = sorted(sink.records[0].shadows, key=lambda e: str(e["variant"]), reverse=True)
    assert int8 == {
        "variant": "int8",
        "status": 200,
        "error": None,
        "latency_ms": 3.0,
        "agree": True,
        "rows": 1,
        "rows_agree": 1,
        "max_abs_diff": 0.0,
        "max_rel_diff": 0.0,
    }
    assert fp16 == {"variant": "fp16", "status": 0, "error": "timeout", "latency_ms": 1000.0}


@pytest.mark.parametrize("primary_last", [True, False])
async def test_a_large_answer_is_compared_in_the_pool_and_written_once(
    pool: ComparePool, primary_last: bool
) -> None:
    pair = Pair(["int8"], comparator("json-exact", ignore_paths=["id"]), pool)
    sink = Submitted()
    other = LARGE.replace(b'"id":"x"', b'"id":"y"')
    if primary_last:
        pair.shadow_done("int8", ShadowResult(200, None, 2.0, other))
        pair.primary_done(200, LARGE)
        pair.finish_with(record(), sink)
    else:
        pair.primary_done(200, LARGE)
        pair.finish_with(record(), sink)
        pair.shadow_done("int8", ShadowResult(200, None, 2.0, other))
    assert sink.records == []  # handed to the pool: not on the caller's stack
    assert pool.backlog == 1
    await asyncio.wait_for(sink.arrived.wait(), 5.0)
    await asyncio.sleep(0.05)  # the subject: a second write, if there were one, would come now
    assert len(sink.records) == 1
    assert sink.records[0].shadows == [
        {"variant": "int8", "status": 200, "error": None, "latency_ms": 2.0, "agree": True, "rows": 1,
         "rows_agree": 1}
    ]  # fmt: skip
    assert pool.backlog == 0
    assert pool.counts["pool"] == 1


async def test_small_answers_stay_inline_even_with_a_pool(pool: ComparePool) -> None:
    pair = Pair(["int8"], comparator("oip-top1"), pool)
    sink = Submitted()
    pair.primary_done(200, SMALL)
    pair.shadow_done("int8", ShadowResult(200, None, 2.0, SMALL))
    pair.finish_with(record(), sink)
    assert len(sink.records) == 1
    assert sink.records[0].shadows[0]["agree"] is True
    assert pool.counts == {"inline": 1}


async def test_answers_that_cannot_be_compared_are_not() -> None:
    calls: list[object] = []

    def compare(primary: object, shadow: object) -> Comparison:
        calls.append(shadow)
        return Comparison(agree=True)

    for primary_status, result in [
        (500, ShadowResult(200, None, 1.0, b"{}")),
        (200, ShadowResult(503, "upstream_5xx", 1.0, b"{}")),
        (200, ShadowResult(0, "dropped:compare_busy", 0.0)),
    ]:
        pair = Pair(["s"], compare)
        sink = Submitted()
        pair.primary_done(primary_status, b"{}")
        pair.shadow_done("s", result)
        pair.finish_with(record(), sink)
        assert len(sink.records) == 1
        assert "agree" not in sink.records[0].shadows[0]
    assert calls == []


async def test_a_comparator_that_raises_costs_the_comparison_not_the_record(pool: ComparePool) -> None:
    def broken(primary: object, shadow: object) -> Comparison:
        raise RuntimeError("bug")

    sink = Submitted()
    pair = Pair(["s"], broken, pool)
    pair.primary_done(200, LARGE)
    pair.shadow_done("s", ShadowResult(200, None, 1.0, LARGE))
    pair.finish_with(record(), sink)
    await asyncio.wait_for(sink.arrived.wait(), 5.0)
    assert sink.records[0].shadows[0]["compare_error"] == "comparison failed: RuntimeError"
    assert pool.counts["failed"] == 1


def test_answers_are_read_with_their_own_headers() -> None:
    """A gzip primary in the binary extension against a JSON shadow, and the reverse: the headers travel with
    each body, so both are read."""
    rows = [[0.1, 0.9], [0.8, 0.2]]
    packed = gzipped(binary(output("probabilities", rows)))
    for primary, shadow in [(packed, Answer(scores(rows))), (Answer(scores(rows)), packed)]:
        pair = Pair(["int8"], comparator("oip-numeric"), max_bytes=4096)
        sink = Submitted()
        pair.primary_done(200, primary.body, primary.headers)
        pair.shadow_done("int8", ShadowResult(200, None, 1.0, shadow.body, shadow.headers))
        pair.finish_with(record(), sink)
        (entry,) = sink.records[0].shadows
        assert (entry["agree"], entry["rows"], entry["rows_agree"]) == (True, 2, 2)


def test_the_pair_cap_bounds_decompression() -> None:
    body = gzipped(Answer(SMALL))
    pair = Pair(["int8"], comparator("oip-top1"), max_bytes=len(SMALL) - 1)
    sink = Submitted()
    pair.primary_done(200, SMALL)
    pair.shadow_done("int8", ShadowResult(200, None, 1.0, body.body, body.headers))
    pair.finish_with(record(), sink)
    cap = len(SMALL) - 1
    assert sink.records[0].shadows[0]["compare_error"] == (
        f"shadow answer's gzip body decompresses to more than {cap} bytes (spec.shadow.maxBodyBytes)"
    )


def test_a_primary_answer_over_the_cap_is_not_compared_and_the_entry_says_so() -> None:
    pair = Pair(["int8"], comparator("oip-top1"), max_bytes=100)
    sink = Submitted()
    pair.primary_too_large(200)
    pair.shadow_done("int8", ShadowResult(200, None, 1.0, SMALL))
    pair.finish_with(record(), sink)
    assert sink.records[0].shadows == [
        {"variant": "int8", "status": 200, "error": None, "latency_ms": 1.0, "rows": 0, "rows_agree": 0,
         "compare_error": "primary answer over spec.shadow.maxBodyBytes (100 bytes): not compared"}
    ]  # fmt: skip


def test_a_request_not_mirrored_for_its_size_is_marked_skipped() -> None:
    pair = Pair(["int8", "fp16"], None)
    sink = Submitted()
    for variant in ("int8", "fp16"):
        pair.shadow_done(variant, ShadowResult(0, "dropped:body_too_large", 0.0))
    assert not pair.needs_primary
    pair.primary_done(200)
    pair.finish_with(record(), sink)
    assert sink.records[0].shadows == [
        {
            "variant": v,
            "status": 0,
            "error": "dropped:body_too_large",
            "latency_ms": 0.0,
            "skipped": "too_large",
        }
        for v in ("fp16", "int8")
    ]


def test_the_primary_body_is_kept_only_while_something_may_be_compared() -> None:
    assert Pair(["s"], comparator("oip-top1")).needs_primary  # the shadow has not answered yet
    assert not Pair(["s"], comparator("none")).needs_primary
    assert not Pair(["s"], None).needs_primary
    failed = Pair(["s"], comparator("oip-top1"))
    failed.shadow_done("s", ShadowResult(0, "timeout", 1000.0))
    assert not failed.needs_primary
    answered = Pair(["s"], comparator("oip-top1"))
    answered.shadow_done("s", ShadowResult(200, None, 1.0, SMALL))
    assert answered.needs_primary
