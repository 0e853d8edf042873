"""CPU per outcome record of the SQLite store's batch write (what the outcome writer's thread pays).

Usage: python -m loadtests.bench_sqlite_writes [--records 60000] [--batch 1000] [--reps 3]
Process time, so other load on the machine moves the figure little; medians over `reps` fresh stores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from experiments.outcome import OutcomeRecord
from experiments.sqlite_store import SqliteOutcomeStore


def records(n: int) -> list[OutcomeRecord]:
    """`n` records shaped as the bench's canary writes them."""
    return [
        OutcomeRecord(
            request_id=f"abcdef0123456789{i:016x}",
            ts=1.7e9 + i,
            experiment="bench-canary",
            variant="stable",
            p_variant=0.9,
            status=200,
            error=None,
            latency_ms=1.234,
            upstream_ms=0.9,
            unit=f"user-{i % 1000}",
            state_version=1,
            ttfb_ms=0.8,
            bytes_out=300,
            method="POST",
            path="/v2/models/digits/infer",
        )
        for i in range(n)
    ]


def main(argv: list[str] | None = None) -> None:
    """Print µs of CPU per record, per rep and the median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    batch = records(args.records)
    runs = []
    for _ in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            store = SqliteOutcomeStore(Path(tmp) / "outrider.db")
            started = time.process_time()
            for i in range(0, len(batch), args.batch):
                store.write(batch[i : i + args.batch])
            runs.append((time.process_time() - started) / len(batch) * 1e6)
    print(f"{' '.join(f'{r:.2f}' for r in runs)} µs/record; median {statistics.median(runs):.2f}")


if __name__ == "__main__":
    main()
