"""Redis memory stays bounded (a real redis-server): with `storeRetention` the leader's fenced checkpoint
trims the outcome and reward streams up to what it has consumed, the rewards' and the index's keys expire
on their own, and a new leader loading the checkpoint from the trimmed store continues with exactly the
e-values of a controller that read the whole, untrimmed stream (the same records under another prefix).
Without a retention a checkpoint trims nothing."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from redis import Redis

from analysis import controller as controller_module
from analysis.checkpoint import Checkpoints
from analysis.comparisons import judge_for
from analysis.controller import Controller
from experiments.model import Experiment
from experiments.outcome import OutcomeRecord
from experiments.redis_feedback import RedisFeedbackStore
from experiments.redis_state import RedisStateStore
from experiments.redis_store import RedisOutcomeStore
from experiments.state import ExperimentState, Phase, initial_state, transition
from loadtests.redis_server import RedisServer, running_redis
from tests.experiments.test_redis_late_feedback import GRACE_S, NAME, rewarded
from tests.support.wait import wait_until

KEY = b"c" * 32
ROUNDS, PER_ROUND = 150, 100
TRIMMED, WHOLE = "a:", "b:"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path / "redis" / "redis.log") as server:
        yield server


class States:
    """The state keeper's part the controller uses, in memory (one per store: both see the same looks)."""

    def __init__(self, experiment: Experiment) -> None:
        self.experiment, self.state = experiment, initial_state(experiment, 0.0)

    def current(self, name: str) -> ExperimentState:
        return self.state

    async def change(
        self, name: str, phase: Phase, step: int, reason: str, *, extra: Mapping[str, object] | None = None,
        **details: object,
    ) -> ExperimentState:  # fmt: skip
        self.state = transition(self.experiment, self.state, phase, step, 0.0, reason, **details)
        self.state = replace(self.state, extra={**self.state.extra, **(extra or {})})
        return self.state

    async def annotate(self, name: str, **extra: object) -> None:
        self.state = replace(self.state, version=self.state.version + 1, extra={**self.state.extra, **extra})


def batch(rng: random.Random, start: int) -> list[OutcomeRecord]:
    """PER_ROUND records on the records' own clock (100 a second): the candidate a little slower."""
    out = []
    for i in range(start, start + PER_ROUND):
        variant = "candidate" if rng.random() < 0.5 else "stable"
        latency = rng.lognormvariate(0.1 if variant == "candidate" else 0.0, 0.3)
        out.append(
            OutcomeRecord(f"r{i}", 1000.0 + i / 100, NAME, variant, 0.5, 200, None, latency, latency, f"u{i}")
        )
    return out


def leader(url: str, owner: str) -> RedisStateStore:
    store = RedisStateStore(url, prefix=TRIMMED, retention_s=0.0)
    token = store.acquire(owner, 60_000)
    assert token is not None
    store.fence(token)
    return store


def memory(raw: Redis, prefix: str) -> dict[str, int]:
    """Entries and bytes of the two streams; keys per request (index, reward), and the others (the batch
    keys, one per sink batch for a day, aside)."""
    streams = [f"{prefix}outcomes:{NAME}", f"{prefix}feedback:{NAME}"]
    keys = [k.decode() if isinstance(k, bytes) else k for k in raw.keys(f"{prefix}*")]
    per_request = [k for k in keys if k.startswith((f"{prefix}request:", f"{prefix}reward:"))]
    return {
        "xlen": int(raw.xlen(streams[0])),
        "feedback_xlen": int(raw.xlen(streams[1])),
        "stream_bytes": sum(int(raw.memory_usage(k, samples=0) or 0) for k in streams),
        "per_request_keys": len(per_request),
        "index_keys": len([k for k in per_request if ":request:" in k]),
        "other_keys": len([k for k in keys if k not in per_request and not k.startswith(f"{prefix}batch:")]),
    }


def snapshot(ctl: Controller) -> bytes:
    return orjson.dumps(ctl.looker.snapshot(), option=orjson.OPT_SORT_KEYS)


async def test_trimmed_streams_stay_bounded_and_a_new_leader_continues_with_the_same_e_values(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(controller_module, "CHECKPOINT_EVERY_S", 0.0)  # a checkpoint at every tick
    raw = Redis.from_url(redis_server.url)
    raw.config_set("stream-node-max-entries", 10)  # XTRIM ~ trims whole nodes: small ones, a tight bound
    exp = rewarded()
    window = {NAME: 1.0}.get
    stores = {p: RedisOutcomeStore(redis_server.url, prefix=p, reward_window=window, index_grace_s=GRACE_S)
              for p in (TRIMMED, WHOLE)}  # fmt: skip
    feedback = {p: RedisFeedbackStore(redis_server.url, prefix=p) for p in (TRIMMED, WHOLE)}
    states = {p: States(exp) for p in (TRIMMED, WHOLE)}
    first = leader(redis_server.url, "first")
    trimmed = Controller(
        exp, stores[TRIMMED], states[TRIMMED], judge_for, checkpoints=Checkpoints(first, KEY)
    )
    whole = Controller(exp, stores[WHOLE], states[WHOLE], judge_for)
    rng, previous = random.Random(7), list[OutcomeRecord]()
    for n in range(ROUNDS):
        records = batch(rng, n * PER_ROUND)
        for prefix in (TRIMMED, WHOLE):
            stores[prefix].write(records)
            for rec in previous[::2]:  # rewards of the round before: they come later than their outcomes
                found = feedback[prefix].find(rec.request_id)
                assert found is not None
                reward = float(hash(rec.request_id) % 3 == 0)
                assert feedback[prefix].add_feedback(found[0], found[1], reward, 0.0, late=False)
        previous = records
        if n == ROUNDS // 2:  # the leader is lost: a new one loads the checkpoint from the trimmed store
            first.close()
            raw.delete(f"{TRIMMED}lease")  # killed: its lease expires
            second = leader(redis_server.url, "second")
            trimmed = Controller(
                exp, stores[TRIMMED], states[TRIMMED], judge_for, checkpoints=Checkpoints(second, KEY)
            )
            trimmed._restore()  # what `run` does first
            assert trimmed.looker.records > 0
        await trimmed.tick()
        await whole.tick()
    assert snapshot(trimmed) == snapshot(whole)  # the same e-values, statistics and counts
    assert trimmed.looker.records == whole.looker.records == ROUNDS * PER_ROUND
    # the same decisions at the same records
    assert states[TRIMMED].state.history == states[WHOLE].state.history
    bounded, kept = memory(raw, TRIMMED), memory(raw, WHOLE)
    print(f"\nafter {ROUNDS * PER_ROUND} records in {ROUNDS} batches: trimmed {bounded}, kept whole {kept}")
    assert kept["xlen"] == ROUNDS
    assert bounded["xlen"] <= 2 * 10 + 1  # what the last checkpoint had not consumed + two nodes at most
    assert bounded["feedback_xlen"] <= 2 * 10 + 1
    assert bounded["stream_bytes"] * 5 < kept["stream_bytes"]
    assert second.trimmed > 0
    # the index and the rewards' keys vanish on their own a window and a grace after their records
    assert bounded["per_request_keys"] > 0
    await wait_until(lambda: memory(raw, TRIMMED)["per_request_keys"] == 0, timeout=1.0 + GRACE_S + 5.0)
    after = memory(raw, TRIMMED)
    print(f"{1.0 + GRACE_S:.0f} s later: {after}")
    assert after["other_keys"] == 7  # 2 streams, 2 count hashes, checkpoint, lease, fence
    assert stores[TRIMMED].count(NAME) == ROUNDS * PER_ROUND  # the count of stored records is kept
    exported = list(stores[TRIMMED].iter_raw(NAME))
    assert len(exported) == bounded["xlen"] * PER_ROUND  # the export: what is kept
    assert len(list(stores[WHOLE].iter_raw(NAME))) == ROUNDS * PER_ROUND
    for store in stores.values():
        store.close()
    for reader in feedback.values():
        reader.close()
    second.close()
    raw.close()


def test_a_checkpoint_trims_only_with_a_retention_and_never_past_what_it_consumed(
    redis_server: RedisServer,
) -> None:
    raw = Redis.from_url(redis_server.url)
    raw.config_set("stream-node-max-entries", 1)  # exact trimming, to see the bound itself
    outcomes = RedisOutcomeStore(redis_server.url, prefix=TRIMMED)
    rng = random.Random(1)
    for n in range(30):
        outcomes.write(batch(rng, n * PER_ROUND))
        time.sleep(0.002)  # entries a few milliseconds apart
    rows = outcomes.read_after(NAME, 0, 100_000)
    consumed = rows[20 * PER_ROUND - 1][0]  # the last record of the 20th entry
    for retention, left in ((None, 30), (3600.0, 30), (0.0, 11)):
        store = leader(redis_server.url, "x")
        store.retention_s = retention
        store.save_checkpoint(NAME, b"blob", (consumed, 0))
        assert raw.xlen(f"{TRIMMED}outcomes:{NAME}") == left, retention
        assert store.trimmed == 30 - left
        store.release(store.token or "")
        store.close()
    assert [r.request_id for _, r in outcomes.read_after(NAME, consumed, 100_000)] == [
        r.request_id for _, r in rows[20 * PER_ROUND :]
    ]  # everything not consumed is still there
    outcomes.close()
    raw.close()
