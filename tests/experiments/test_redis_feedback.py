"""Rewards and drops in the Redis store against a real redis-server: the request-id index (only for
experiments with a reward goal, expiring with the window), a reward stored once whichever replica takes it,
read back in one order, joined into the export; the fleet's drop counts added once per replica even when a
publish is retried."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from redis import Redis

from experiments.outcome import OutcomeRecord
from experiments.redis_drops import PUBLISH, fleet_key, parse_fleet, publish_args, sent_key
from experiments.redis_feedback import INDEX_GRACE_S, RedisFeedbackStore, index_key
from experiments.redis_store import RedisOutcomeStore
from experiments.sink import OutcomeSink, SinkLimits
from loadtests.redis_server import RedisServer, running_redis
from proxy.fleet.drops import DropPublisher, FleetDrops
from tests.experiments.test_redis_store import record as stored_record

WINDOW_S = 30.0


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis" / "redis.log") as server:
        yield server


def record(i: int, experiment: str = "rw", rid: str | None = None) -> OutcomeRecord:
    return replace(stored_record(i, experiment), request_id=rid or f"{experiment}-{i}")


def window(name: str) -> float | None:
    return WINDOW_S if name == "rw" else None


def test_records_of_rewarded_experiments_are_found_by_request_id_while_their_window_lasts(
    redis_server: RedisServer,
) -> None:
    outcomes = RedisOutcomeStore(redis_server.url, reward_window=window)
    feedback = RedisFeedbackStore(redis_server.url)
    raw = Redis.from_url(redis_server.url)
    outcomes.write([record(i) for i in range(3)] + [record(0, "plain")])
    outcomes.write([record(9, rid="rw-1")])  # a request id again (clients may send their own): the first wins
    rows = outcomes.read_after("rw", 0, 100)
    for pos, rec in rows[:3]:
        assert feedback.find(rec.request_id) == (pos, rec)
    assert feedback.find("plain-0") is None  # no reward goal: not indexed
    assert feedback.find("never") is None
    ttl = raw.ttl(index_key("rw-0"))
    assert WINDOW_S < ttl <= WINDOW_S + INDEX_GRACE_S  # bounded: it expires after the window and a grace
    assert [r.request_id for _, r in outcomes.read_after("plain", 0, 100)] == ["plain-0"]
    raw.close()
    outcomes.close()
    feedback.close()


def test_a_reward_is_stored_once_for_the_fleet_read_in_order_and_joined_into_the_export(
    redis_server: RedisServer,
) -> None:
    outcomes = RedisOutcomeStore(redis_server.url, reward_window=window)
    outcomes.write([record(i) for i in range(6)])
    a, b = RedisFeedbackStore(redis_server.url), RedisFeedbackStore(redis_server.url)  # two replicas
    found = {i: a.find(f"rw-{i}") for i in range(6)}
    rewards = {4: 0.25, 1: 1.0, 2: 0.1 + 0.2}  # stored in this order
    for i, reward in rewards.items():
        pos, rec = found[i] or (0, record(i))
        assert a.add_feedback(pos, rec, reward, 2000.0, late=False)
        assert not b.add_feedback(pos, rec, 0.5, 2000.0, late=False)  # another replica: a duplicate
        assert not a.add_feedback(pos, rec, reward, 2000.0, late=False)
    late_pos, late_rec = found[5] or (0, record(5))
    assert a.add_feedback(late_pos, late_rec, 1.0, 5000.0, late=True)
    assert not b.add_feedback(late_pos, late_rec, 1.0, 5000.0, late=False)  # late, yet once
    read = outcomes.read_feedback("rw", 0, 100)
    assert [(r.request_id, r.reward) for _, r in read] == [(f"rw-{i}", x) for i, x in rewards.items()]
    assert [seq for seq, _ in read] == sorted(seq for seq, _ in read)
    assert [r.request_id for _, r in outcomes.read_feedback("rw", read[0][0], 100)] == ["rw-1", "rw-2"]
    assert outcomes.read_feedback("rw", read[-1][0], 100) == []
    assert outcomes.feedback_counts("rw") == {"timely": 3, "late": 1}
    exported = {d["request_id"]: d["reward"] for d in map(orjson.loads, outcomes.iter_raw("rw"))}
    assert exported == {f"rw-{i}": rewards.get(i) for i in range(6)}  # the late one is not joined
    for store in (outcomes, a, b):
        store.close()


def test_drop_counts_are_added_once_even_when_a_publish_is_retried(redis_server: RedisServer) -> None:
    raw = Redis.from_url(redis_server.url)
    script = raw.register_script(PUBLISH)

    def publish(writer: str, now: dict[tuple[str, str], int], acked: dict[tuple[str, str], int]) -> None:
        call = publish_args(writer, now, acked)
        assert call is not None
        script(keys=call[0], args=call[1])

    publish("a", {("x", "candidate"): 3}, {})
    publish("a", {("x", "candidate"): 3}, {})  # the reply was lost: the retry adds nothing
    publish("b", {("x", "candidate"): 2, ("x", "stable"): 1}, {})
    publish("a", {("x", "candidate"): 5}, {("x", "candidate"): 3})
    assert parse_fleet(raw.hgetall(fleet_key("x"))) == {"candidate": 7, "stable": 1}
    raw.delete(sent_key("a"))  # expired after a day without drops: the writer's own count is the base
    publish("a", {("x", "candidate"): 6}, {("x", "candidate"): 5})
    assert parse_fleet(raw.hgetall(fleet_key("x"))) == {"candidate": 8, "stable": 1}
    assert publish_args("a", {("x", "candidate"): 6}, {("x", "candidate"): 6}) is None
    raw.close()


async def test_the_publisher_and_the_fleet_reader(redis_server: RedisServer) -> None:
    sinks = [OutcomeSink(RedisOutcomeStore(redis_server.url), SinkLimits(max_pending=1)) for _ in range(2)]
    publishers = [DropPublisher(redis_server.url, sink) for sink in sinks]
    fleet = FleetDrops(redis_server.url, lambda: ["rw", "other"])
    for k, sink in enumerate(sinks):
        for i in range(4 + k):  # the writer is not running: all but the first are dropped (queue_full)
            sink.submit(record(i))
    assert await publishers[0].publish()
    stop = asyncio.Event()
    task = asyncio.create_task(publishers[1].run(stop))
    expected: Counter[str] = Counter()
    for sink in sinks:
        expected.update({variant: n for (_, variant), n in sink.dropped_by_variant.items()})
    assert expected == {"candidate": 3, "stable": 4}
    try:
        deadline = time.monotonic() + 5.0
        while True:
            await fleet.refresh()
            if fleet.drops_for("rw") == expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert fleet.drops_for("rw") == expected
        assert fleet.drops_for("other") == {}
    finally:
        stop.set()
        await task
    for publisher in publishers:
        await publisher.close()  # a last publish: nothing new, nothing added
    await fleet.refresh()
    assert fleet.drops_for("rw") == expected
    await fleet.close()
    for sink in sinks:
        sink.backend.close()  # type: ignore[attr-defined]
