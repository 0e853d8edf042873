"""Comparisons off the event loop: small answers are compared inline, large ones in a bounded worker pool.

Usage (the shadow dispatcher does this; `shadow.pairing.Pair` hands over the jobs):
    pool = ComparePool(CompareLimits())
    runner = pool.run()                              # awaited beside the dispatcher's workers
    if pool.offloads(compare, primary, answers):     # large: queue it; the job's `done` writes the record
        pool.put(CompareJob(compare, primary, {"int8": answer}, done))
    pool.busy                                        # the mirror drops new copies (compare_busy) while True
    await pool.close(timeout)                        # drain, then the runner stops the pool

Why a process pool: comparators are Python over parsed JSON (`json-exact` walks every value; the OIP kinds
flatten lists before NumPy sees them) and hold the GIL, so a 1 MiB answer costs 60–350 ms of CPU (more on a
shared machine) that a thread would still take from the event loop's thread. Measured on a real sidecar
(tests/integration/test_hardening.py, 4 pairs/s of 1 MiB json-exact): small requests' p99 was 211 ms with
comparisons inline, 149 ms in a thread, 7.5 ms in a process (8.5 ms on the same machine without
comparisons). A process costs one pickle of each body (a copy, about a millisecond per MiB, in the
executor's feeder thread) and runs at a lower CPU priority. Answers up to `inline_bytes` are compared inline:
at most about a millisecond, less than the round trip through the pool is worth (tests/shadow/
compare_load.py prints both). An answer with a Content-Encoding counts as large: until it is decompressed its
size is only known to be at most the shadow body cap.

Bounds: `queue` comparisons waiting or running before the mirror stops admitting copies that need one
(they are counted as dropped `compare_busy`, so eligible == enqueued + dropped + sampled_out still holds).
A copy admitted earlier is always compared, so the backlog can pass `queue` by the copies already in flight
(at most the dispatcher's queue plus its workers, plus pairs waiting for their primary) — bounded, and never
a reason to lose a record: every job's `done` is called exactly once, with "not compared" entries if the
pool is shut down first.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from plumbing.workqueue import WorkQueue
from shadow.compare.answer import Answer
from shadow.compare.base import Comparator, Comparison, not_comparable
from shadow.compare.none import NoComparison
from shadow.limits import CompareLimits

log = logging.getLogger(__name__)
SHUTDOWN = "not compared: the sidecar was shutting down"
NICENESS = 10
"""How much lower the compare workers' CPU priority is: on a busy machine the event loop wins the core."""
ORPHAN_CHECK_S = 0.5
"""How often a compare worker checks that the sidecar that started it is still there."""


@dataclass(frozen=True, slots=True)
class CompareJob:
    """The comparisons of one pair: the primary's answer against each shadow's, then `done` with them."""

    compare: Comparator
    primary: Answer
    shadows: dict[str, Answer]
    """Answer of each shadow to compare, by variant."""
    done: Callable[[dict[str, Comparison]], None]
    """Called exactly once with a comparison for every shadow of `shadows`."""


def run_comparison(compare: Comparator, primary: Answer, shadow: Answer) -> Comparison:
    """What a pool worker runs (module level, so a process pool can pickle a reference to it)."""
    return compare(primary, shadow)


def worker_init(parent: int) -> None:
    """Initializer of the worker processes: below the event loop's CPU priority (comparisons are background
    work, answering clients is not), and gone as soon as the sidecar `parent` is."""
    os.nice(NICENESS)
    threading.Thread(target=_exit_with, args=(parent,), name="orphan-watch", daemon=True).start()


def _exit_with(parent: int) -> None:
    # A pool worker holds both ends of its call queue, so it never reads EOF when the sidecar dies: without
    # this a `kill -9` (or an OOM kill) of the sidecar would leave the worker running for ever.
    while os.getppid() == parent:
        time.sleep(ORPHAN_CHECK_S)
    os._exit(0)


class ComparePool:
    """A bounded queue of comparison jobs (`plumbing.workqueue`) served by `workers` coroutines, each
    awaiting one pool call."""

    def __init__(self, limits: CompareLimits | None = None) -> None:
        self.limits = limits or CompareLimits()
        # Bounded by `busy` (checked by the mirror before a copy is sent), not by the queue: `put` is
        # unchecked, so a copy admitted earlier is always compared.
        self._queue = WorkQueue[CompareJob](
            self.limits.queue, workers=self.limits.workers, on_drop=self._not_compared
        )
        self._executor: Executor | None = None
        self._running = False
        self.backlog = 0
        """Comparisons queued or running in the pool."""
        self.max_backlog = 0
        self.counts: Counter[str] = Counter()
        """Comparisons by where they ran (`inline`, `pool`) and those that failed (`failed`)."""

    @property
    def busy(self) -> bool:
        """Whether the pool is full: a new copy that needs a comparison should be dropped."""
        return self.backlog >= self.limits.queue

    def offloads(self, compare: Comparator, primary: Answer, shadows: Collection[Answer]) -> bool:
        """Whether these answers go to the pool; False: the caller compares them inline, now."""
        if not self._running or self._queue.closing or self.limits.mode == "inline":
            return False  # nothing would serve the queue: compare where we are
        if isinstance(compare, NoComparison):
            return False
        return max(_weight(primary), *map(_weight, shadows)) > self.limits.inline_bytes

    def compare_inline(self, compare: Comparator, primary: Answer, shadow: Answer) -> Comparison:
        """Compare now, on the caller's thread (small answers, or no pool running)."""
        self.counts["inline"] += 1
        return self._guarded(compare, primary, shadow)

    def put(self, job: CompareJob) -> None:
        """Queue a job (after `offloads` said so); never waits."""
        self._queue.put(job)
        self.backlog += len(job.shadows)
        self.max_backlog = max(self.max_backlog, self.backlog)

    async def run(self) -> None:
        """Serve the queue until close(); then shut the pool down (its processes exit)."""
        self._running = True
        try:
            await self._queue.serve(self._compare_all)
        finally:
            self._running = False
            executor, self._executor = self._executor, None
            if executor is not None:
                # In a thread: a process pool's shutdown joins its workers, each after its current item.
                await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)

    async def close(self, timeout: float) -> None:
        """Take no more jobs (later pairs compare inline); wait up to `timeout` for the queued ones; jobs
        still waiting then are finished as not compared. The workers stop once the queue is empty."""
        if await self._queue.close(timeout) is not None:
            log.warning("shadow comparisons not drained within %.1fs", timeout)

    def _not_compared(self, job: CompareJob, reason: str) -> None:
        """A job dropped from the queue (at the deadline of `close`): its pair is finished without them."""
        self.backlog -= len(job.shadows)
        _finish(job, dict.fromkeys(job.shadows, not_comparable(SHUTDOWN)))

    async def _compare_all(self, jobs: list[CompareJob]) -> None:
        for job in jobs:  # one (the queue's batches are of one)
            results: dict[str, Comparison] = {}
            try:
                for variant, body in job.shadows.items():
                    results[variant] = await self._pooled(job.compare, job.primary, body)
                    self.backlog -= 1
            except asyncio.CancelledError:  # the record must still be written, without these comparisons
                self.backlog -= len(job.shadows) - len(results)
                _finish(job, {v: results.get(v, not_comparable(SHUTDOWN)) for v in job.shadows})
                raise
            _finish(job, results)

    async def _pooled(self, compare: Comparator, primary: Answer, shadow: Answer) -> Comparison:
        if self.limits.mode == "inline":
            return self.compare_inline(compare, primary, shadow)
        self.counts["pool"] += 1
        executor = self._executor_now()
        try:
            return await asyncio.get_running_loop().run_in_executor(
                executor, run_comparison, compare, primary, shadow
            )
        except BrokenProcessPool:  # a worker died (killed, out of memory): start a new pool next time
            log.warning("shadow compare worker died; starting a new pool")
            if self._executor is executor:
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            self.counts["failed"] += 1
            return not_comparable("comparison failed: the compare worker died")
        except Exception as err:  # a comparator bug must cost one comparison, never the record
            log.exception("shadow comparison failed")
            self.counts["failed"] += 1
            return not_comparable(f"comparison failed: {type(err).__name__}")

    def _executor_now(self) -> Executor:
        """The pool, made on first use: a sidecar whose answers are all small never starts a process."""
        if self._executor is None:
            workers = self.limits.workers
            if self.limits.mode == "process":
                # spawn, not fork: the sidecar has threads (SQLite writer, to_thread), and a forked child
                # could inherit one of their locks held.
                context = multiprocessing.get_context("spawn")
                self._executor = ProcessPoolExecutor(
                    workers, mp_context=context, initializer=worker_init, initargs=(os.getpid(),)
                )
            else:
                self._executor = ThreadPoolExecutor(workers, thread_name_prefix="shadow-compare")
        return self._executor

    def _guarded(self, compare: Comparator, primary: Answer, shadow: Answer) -> Comparison:
        try:
            return compare(primary, shadow)
        except Exception as err:
            log.exception("shadow comparison failed")
            self.counts["failed"] += 1
            return not_comparable(f"comparison failed: {type(err).__name__}")


def _weight(answer: Answer) -> int:
    """Bytes comparing `answer` may have to read: an encoded body may decompress to its cap."""
    return answer.max_bytes if answer.encoded else len(answer.body)


def _finish(job: CompareJob, results: dict[str, Comparison]) -> None:
    try:
        job.done(results)
    except Exception:  # the done callback submits a record: log its failure, keep serving the queue
        log.exception("shadow pair could not be finished")
