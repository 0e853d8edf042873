"""The Redis store against a real redis-server: outcome streams (positions, a retried batch stored once) and
the lease with its fencing (a write of a replica whose lease was taken over is refused atomically)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from analysis.checkpoint import Checkpoints, Mark
from analysis.comparisons import judge_for
from analysis.verdict import Looker
from experiments.config import load_experiment_text
from experiments.outcome import OutcomeRecord
from experiments.redis_state import Fenced, RedisStateStore
from experiments.redis_store import RedisOutcomeStore, entry_of, position
from experiments.state import initial_state
from loadtests.redis_server import RedisServer, running_redis
from tests.integration.conftest import canary_yaml
from tests.support.wait import wait_until_sync


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis" / "redis.log") as server:
        yield server


def record(i: int, experiment: str = "split") -> OutcomeRecord:
    return OutcomeRecord(
        request_id=f"r{i}",
        ts=1000.0 + i,
        experiment=experiment,
        variant="stable" if i % 2 else "candidate",
        p_variant=0.5,
        status=200,
        error=None,
        latency_ms=1.0,
        upstream_ms=1.0,
        unit=f"u{i}",
    )


def test_positions_round_trip() -> None:
    pos = position(b"1765000000123-7", 42)
    assert entry_of(pos) == ("1765000000123-7", 42)
    assert position("1765000000123-7", 43) > pos
    assert position("1765000000123-8", 0) > position("1765000000123-7", 4095)
    assert position("1765000000124-0", 0) > position("1765000000123-8", 0)


def test_batches_are_read_back_in_order_and_a_retried_batch_is_stored_once(redis_server: RedisServer) -> None:
    store = RedisOutcomeStore(redis_server.url)
    first = [record(i) for i in range(5)] + [record(100, "other")]
    store.write(first)
    store.write(first)  # the same batch again (a reply lost after the script ran): not appended twice
    store.write([record(i) for i in range(5, 8)])
    rows = store.read_after("split", 0, 10_000)
    assert [r.request_id for _, r in rows] == [f"r{i}" for i in range(8)]
    assert [seq for seq, _ in rows] == sorted(seq for seq, _ in rows)
    middle = rows[3][0]  # reading on from the middle of an entry
    assert [r.request_id for _, r in store.read_after("split", middle, 10_000)] == [
        f"r{i}" for i in range(4, 8)
    ]
    assert store.read_after("split", rows[-1][0], 10_000) == []
    assert store.max_seq("split") == rows[-1][0]
    assert (store.count("split"), store.count("other"), store.count()) == (8, 1, 9)
    assert store.experiments() == ["other", "split"]
    exported = list(store.iter_raw())
    assert len(exported) == 9
    store.close()


def test_a_write_fails_while_redis_is_down_and_goes_through_once_it_is_back(
    redis_server: RedisServer,
) -> None:
    store = RedisOutcomeStore(redis_server.url)
    batch = [record(i) for i in range(3)]
    redis_server.kill()
    with pytest.raises(RedisConnectionError):
        store.write(batch)
    redis_server.launch()
    store.write(batch)
    assert store.count("split") == 3
    store.close()


def test_the_lease_fences_a_replaced_leaders_writes(redis_server: RedisServer) -> None:
    a, b = RedisStateStore(redis_server.url), RedisStateStore(redis_server.url)
    exp = load_experiment_text(canary_yaml("http://127.0.0.1:1", "http://127.0.0.1:2"), "split.yaml")
    state = initial_state(exp, 1.0)
    token_a = a.acquire("a", 300)
    assert token_a is not None
    assert b.acquire("b", 300) is None  # SET NX: one holder at a time
    a.fence(token_a)
    assert a.save(state)
    assert not a.save(state)  # compare-and-set on the version: not stored twice
    wait_until_sync(lambda: a.holder() is None, 5.0)  # a "paused" past its lease: nobody renewed it
    token_b = b.acquire("b", 5000)
    assert token_b is not None
    assert int(token_b.split(":")[0]) > int(token_a.split(":")[0])  # fencing tokens only grow
    b.fence(token_b)
    newer = replace(state, version=state.version + 1)
    with pytest.raises(Fenced):
        a.save(newer)  # a wakes up: its write is refused in the script, atomically
    with pytest.raises(Fenced):
        a.save_checkpoint("split", b"x")
    assert not a.renew(token_a, 300)  # and its renewal too: it steps down
    assert a.refused == 3
    assert a.load("split") == state  # nothing of a's landed
    assert b.save(newer)
    assert b.renew(token_b, 5000)
    assert b.load("split") == newer
    assert b.versions() == {"split": newer.version}
    b.release(token_b)
    assert b.holder() is None
    a.close()
    b.close()


def test_a_checkpoint_is_used_only_with_the_same_key_and_definition(redis_server: RedisServer) -> None:
    store = RedisStateStore(redis_server.url)
    token = store.acquire("a", 5000)
    store.fence(token)
    exp = load_experiment_text(canary_yaml("http://127.0.0.1:1", "http://127.0.0.1:2"), "split.yaml")
    looker = Looker(judge_for(exp), exp)
    looker.feed([record(i) for i in range(250)], {}, decide=True)
    Checkpoints(store, b"k" * 32).save("split", Mark(7, 0), looker)
    restored = Checkpoints(store, b"k" * 32).load("split", exp)
    assert restored is not None
    assert restored[0] == Mark(7, 0)
    assert restored[1].records == looker.records
    assert Checkpoints(store, b"z" * 32).load("split", exp) is None  # another key: not unpickled
    other = load_experiment_text(canary_yaml("http://127.0.0.1:1", "http://127.0.0.1:3"), "split.yaml")
    assert Checkpoints(store, b"k" * 32).load("split", other) is None  # another definition
    store.close()
