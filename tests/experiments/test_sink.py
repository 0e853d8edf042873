"""The outcome sink never blocks, never loses a record silently, and group-commits to real SQLite."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import orjson

from experiments.outcome import OutcomeRecord
from experiments.sink import OutcomeSink, SinkLimits
from experiments.sqlite_store import SqliteOutcomeStore


def record(i: int, experiment: str = "e") -> OutcomeRecord:
    return OutcomeRecord(
        request_id=f"r{i}",
        ts=1000.0 + i,
        experiment=experiment,
        variant="stable",
        p_variant=0.9,
        status=200,
        error=None,
        latency_ms=1.5,
        upstream_ms=1.0,
        unit=f"u{i % 7}",
    )


def invariant(sink: OutcomeSink) -> bool:
    return sink.produced == sink.stored + sink.pending + sum(sink.dropped.values())


class SlowBackend:
    """Fake backend (pure logic test): blocks until released, can fail."""

    def __init__(self, fail: bool = False) -> None:
        self.release = threading.Event()
        self.fail = fail
        self.batches: list[int] = []

    def write(self, batch: Sequence[OutcomeRecord]) -> None:
        self.release.wait(5)
        if self.fail:
            raise OSError("disk full")
        self.batches.append(len(batch))


async def test_group_commit_to_sqlite_and_read_back(tmp_path: Path) -> None:
    store = SqliteOutcomeStore(tmp_path / "o.db")
    sink = OutcomeSink(store, SinkLimits(batch_max=500, flush_interval_s=0.01))
    task = asyncio.get_running_loop().create_task(sink.run())
    for i in range(2_000):
        sink.submit(record(i, "a" if i % 2 else "b"))
        assert invariant(sink)
    await sink.close(timeout=5)
    await task
    assert sink.stored == 2_000
    assert sink.pending == 0
    assert store.count() == 2_000
    assert store.count("a") == 1_000
    rows = list(store.iter_raw("b", page=300))
    assert [orjson.loads(r)["request_id"] for r in rows] == [f"r{i}" for i in range(0, 2_000, 2)]
    assert store.read(limit=1)[0] == record(0, "b")
    store.close()
    assert (tmp_path / "o.db").exists()


def test_a_batch_goes_in_and_comes_out_whole_in_order(tmp_path: Path) -> None:
    """One statement per batch and per page (json_each in, group_concat out): every field survives,
    floats to the last bit, text that is not ASCII, shadows, and the order and seqs of arrival."""
    store = SqliteOutcomeStore(tmp_path / "o.db")
    batch = [record(i, "a" if i % 3 else "b") for i in range(1_500)]
    batch[7].latency_ms = 0.1 + 0.2  # 0.30000000000000004
    batch[8].request_id = "réq-ü-\u2603"
    batch[9].shadows = [{"variant": "s", "status": 200, "agree": True, "distance": 1e-300}]
    batch[10].error, batch[10].ttfb_ms, batch[10].events = "upstream_5xx", 12.5, 3
    store.write(batch[:1_000])
    store.write(batch[1_000:])
    store.write([])
    got = store.read_after("a", 0, 10_000)
    assert [r for _, r in got] == [r for r in batch if r.experiment == "a"]
    seqs = [seq for seq, _ in got]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    middle = seqs[len(seqs) // 2]
    assert [s for s, _ in store.read_after("a", middle, 25)] == seqs[len(seqs) // 2 + 1 :][:25]
    assert store.read_after("a", seqs[-1], 10) == []
    assert store.read_after("nobody", 0, 10) == []
    b = store.read_after("b", 0, 10_000)
    assert [r for _, r in b] == [r for r in batch if r.experiment == "b"]
    assert store.find("réq-ü-\u2603") is not None
    store.close()


async def test_full_queue_drops_are_counted_and_invariant_holds() -> None:
    backend = SlowBackend()
    sink = OutcomeSink(backend, SinkLimits(max_pending=100, batch_max=10, flush_interval_s=0.001))
    task = asyncio.get_running_loop().create_task(sink.run())
    for i in range(500):
        sink.submit(record(i))
        assert invariant(sink)
        if i % 50 == 0:
            await asyncio.sleep(0.002)
    assert sink.dropped["queue_full"] > 0
    backend.release.set()
    await sink.close(timeout=5)
    await task
    assert invariant(sink)
    assert sink.stored == sum(backend.batches)
    assert sink.stored + sink.dropped["queue_full"] == 500


async def test_write_errors_are_retried_then_counted() -> None:
    backend = SlowBackend(fail=True)
    backend.release.set()
    sink = OutcomeSink(backend, SinkLimits(batch_max=10, flush_interval_s=0.001, retry_backoff_s=0.001))
    task = asyncio.get_running_loop().create_task(sink.run())
    for i in range(25):
        sink.submit(record(i))
    await sink.close(timeout=5)
    await task
    assert sink.stored == 0
    assert sink.dropped["write_error"] == 25
    assert invariant(sink)


async def test_records_after_close_are_counted_as_shutdown_drops(tmp_path: Path) -> None:
    sink = OutcomeSink(SqliteOutcomeStore(tmp_path / "o.db"))
    task = asyncio.get_running_loop().create_task(sink.run())
    await sink.close(timeout=5)
    await task
    assert sink.submit(record(1)) is False
    assert sink.dropped["shutdown"] == 1
    assert invariant(sink)
