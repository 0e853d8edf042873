"""`ComparePool`: large comparisons in a real process pool (same answers as inline), the bound, a worker that
dies, and shutdown: every job finished exactly once, the worker processes gone."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from shadow.compare.answer import Answer
from shadow.compare.base import Comparator, Comparison, comparator
from shadow.compare.pool import NICENESS, SHUTDOWN, CompareJob, ComparePool
from shadow.limits import CompareLimits, Mode
from tests.support.wait import wait_until, wait_until_sync

LARGE = orjson.dumps({"id": "x", "items": [{"k": i, "v": [i, str(i), None]} for i in range(5000)]})


@dataclass(frozen=True)
class Slow:
    """A comparator that takes `seconds` (module level: a process pool pickles it)."""

    seconds: float

    def __call__(self, primary: object, shadow: object) -> Comparison:
        time.sleep(self.seconds)  # the subject: a comparison that takes this long
        return Comparison(agree=True, rows=1, rows_agree=1)


@dataclass(frozen=True)
class Marked:
    """`Slow`, first creating the file `started`: a test waits for it to know the comparison is running."""

    seconds: float
    started: str

    def __call__(self, primary: object, shadow: object) -> Comparison:
        Path(self.started).touch()
        return Slow(self.seconds)(primary, shadow)


@dataclass(frozen=True)
class Niceness:
    """A comparator reporting the niceness of the process it runs in."""

    def __call__(self, primary: object, shadow: object) -> Comparison:
        return Comparison(agree=None, detail=str(os.nice(0)))


class Done:
    """A job's `done`, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Comparison]] = []
        self.event = asyncio.Event()

    def __call__(self, results: dict[str, Comparison]) -> None:
        self.calls.append(results)
        self.event.set()


Started = Callable[..., ComparePool]


@pytest.fixture
async def started() -> AsyncIterator[Started]:
    """Make pools whose runner serves them; each closed and awaited at the end."""
    made: list[tuple[ComparePool, asyncio.Task[None]]] = []

    def _start(**limits: object) -> ComparePool:
        pool = ComparePool(CompareLimits(**limits))  # type: ignore[arg-type]
        made.append((pool, asyncio.create_task(pool.run())))
        return pool

    yield _start
    for pool, runner in made:
        await pool.close(5.0)
        await asyncio.wait_for(runner, 10.0)


def job(compare: Comparator, done: Done, *variants: str) -> CompareJob:
    return CompareJob(compare, Answer(LARGE), dict.fromkeys(variants or ("s",), Answer(LARGE)), done)


@pytest.mark.parametrize("mode", ["process", "thread", "inline"])
async def test_every_mode_gives_the_inline_answer(started: Started, mode: Mode) -> None:
    pool = started(mode=mode)
    await asyncio.sleep(0)  # one loop turn: the runner starts (`run()` is running before its first await)
    compare = comparator("json-exact", ignore_paths=["id"])
    other = LARGE.replace(b'"k":4999', b'"k":-1')
    assert pool.offloads(compare, Answer(LARGE), [Answer(other)]) is (mode != "inline")
    done = Done()
    pool.put(CompareJob(compare, Answer(LARGE), {"same": Answer(LARGE), "differs": Answer(other)}, done))
    await asyncio.wait_for(done.event.wait(), 30.0)
    assert done.calls == [{"same": compare(LARGE, LARGE), "differs": compare(LARGE, other)}]
    assert done.calls[0]["differs"].agree is False
    assert pool.backlog == 0


async def test_process_workers_run_below_the_event_loop_priority(started: Started) -> None:
    pool = started(mode="process")
    done = Done()
    pool.put(job(Niceness(), done))
    await asyncio.wait_for(done.event.wait(), 30.0)
    assert done.calls[0]["s"].detail == str(os.nice(0) + NICENESS)


async def test_small_answers_and_none_are_never_offloaded(started: Started) -> None:
    pool = started(inline_bytes=len(LARGE))
    await asyncio.sleep(0)  # one loop turn: the runner starts (`run()` is running before its first await)
    assert not pool.offloads(
        comparator("json-exact"), Answer(LARGE), [Answer(LARGE)]
    )  # not over the threshold
    assert pool.offloads(comparator("json-exact"), Answer(LARGE + b" "), [Answer(LARGE)])
    assert not pool.offloads(comparator("none"), Answer(LARGE * 2), [Answer(LARGE * 2)])
    # A compressed answer may decompress up to its cap: it counts as that large until it is read.
    small = Answer(b"\x1f\x8b", {"Content-Encoding": "gzip"}, max_bytes=len(LARGE) + 1)
    assert pool.offloads(comparator("json-exact"), Answer(b"{}"), [small])
    assert not pool.offloads(
        comparator("json-exact"), Answer(b"{}"), [Answer(small.body, max_bytes=len(LARGE) + 1)]
    )


async def test_without_a_runner_nothing_is_offloaded() -> None:
    pool = ComparePool()
    assert not pool.offloads(comparator("json-exact"), Answer(LARGE), [Answer(LARGE)])


async def test_busy_once_the_backlog_reaches_the_bound(started: Started) -> None:
    pool = started(mode="thread", queue=3)
    done = Done()
    pool.put(job(Slow(0.2), done, "a", "b"))
    busy_at_two = pool.busy
    pool.put(job(Slow(0.2), done, "c"))
    assert (busy_at_two, pool.busy) == (False, True)
    assert pool.max_backlog == 3
    await wait_until(lambda: len(done.calls) == 2, 5.0)
    assert not pool.busy
    assert pool.backlog == 0


async def test_close_finishes_what_it_cannot_wait_for_and_stops_the_processes(
    started: Started, tmp_path: Path
) -> None:
    pool = started(mode="process")
    first, waiting = Done(), Done()
    running = tmp_path / "running"
    pool.put(job(Marked(1.0, str(running)), first))
    pool.put(job(Slow(1.0), waiting, "a", "b"))
    await wait_until(running.exists, 30.0)  # the first is running in the worker (after its start-up)
    await pool.close(0.1)
    assert waiting.calls == [
        {"a": Comparison(agree=None, detail=SHUTDOWN), "b": Comparison(None, detail=SHUTDOWN)}
    ]
    assert not pool.offloads(comparator("json-exact"), Answer(LARGE), [Answer(LARGE)])  # closing: inline
    # the runner ends once the running comparison is done, and shuts the pool down
    await wait_until(lambda: not multiprocessing.active_children() and first.calls, 10.0)
    assert first.calls == [{"s": Comparison(agree=True, rows=1, rows_agree=1)}]
    assert multiprocessing.active_children() == []
    assert pool.backlog == 0


async def test_a_dead_worker_costs_its_comparison_and_a_new_pool_serves_the_next(
    started: Started, tmp_path: Path
) -> None:
    pool = started(mode="process")
    done = Done()
    running = tmp_path / "running"
    pool.put(job(Marked(5.0, str(running)), done))
    await wait_until(running.exists, 30.0)  # the worker process is in the comparison
    children = multiprocessing.active_children()
    assert children
    for child in children:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
    await asyncio.wait_for(done.event.wait(), 10.0)
    assert done.calls == [{"s": Comparison(agree=None, detail="comparison failed: the compare worker died")}]
    again = Done()
    pool.put(job(comparator("json-exact"), again))
    await asyncio.wait_for(again.event.wait(), 30.0)
    assert again.calls[0]["s"].agree is True
    assert pool.counts["failed"] == 1


async def test_a_cancelled_runner_still_finishes_its_job(tmp_path: Path) -> None:
    pool = ComparePool(CompareLimits(mode="thread"))
    runner = asyncio.create_task(pool.run())
    done = Done()
    running = tmp_path / "running"
    pool.put(job(Marked(0.5, str(running)), done, "a", "b"))
    await wait_until(running.exists, 5.0)  # the first comparison is running in the thread
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert done.calls == [
        {"a": Comparison(agree=None, detail=SHUTDOWN), "b": Comparison(None, detail=SHUTDOWN)}
    ]
    assert pool.backlog == 0


ORPHAN = """
import asyncio, sys
from shadow.compare.pool import CompareJob, ComparePool
from shadow.limits import CompareLimits
from tests.shadow.test_compare_pool import Marked

async def main():
    pool = ComparePool(CompareLimits(mode="process"))
    runner = asyncio.create_task(pool.run())
    await asyncio.sleep(0)  # one loop turn: the runner starts
    pool.put(CompareJob(Marked(60.0, sys.argv[1]), b"", {"s": b""}, print))
    await asyncio.sleep(60)  # the subject: a sidecar that is busy until it is killed

asyncio.run(main())
"""


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_worker_does_not_outlive_a_killed_sidecar(tmp_path: Path) -> None:
    running = tmp_path / "running"
    sidecar = subprocess.Popen(
        [sys.executable, "-c", ORPHAN, str(running)], cwd=Path(__file__).resolve().parents[2]
    )
    workers: list[int] = []
    try:
        wait_until_sync(running.exists, 30.0)  # the worker ran its initializer and is in the 60 s comparison
        workers = [
            p for p in children_of(sidecar.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()
        ]
        assert workers, "no compare worker started"
        sidecar.kill()  # no shutdown: the worker's call queue never closes
        sidecar.wait(10)
        wait_until_sync(lambda: not any(alive(w) for w in workers), 5.0)
    finally:
        sidecar.kill()
        sidecar.wait(10)
        for worker in workers:  # a failed run must not leave them behind either
            if alive(worker):
                os.kill(worker, signal.SIGKILL)
