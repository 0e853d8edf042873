"""CPU per outcome record of the outcome stores' batch write, as the sink's writer thread pays it.

Usage: python -m loadtests.bench_store [--records 60000] [--batch 20 500]
Starts its own redis-server (loadtests/redis_server.py) on a free port and a SQLite file in a temporary
directory, writes the same realistic records in batches of each size to both, and prints the writer's CPU
(process_time, user + system of this process: serialising, the client, the socket) per record, and the CPU
redis-server itself spent (INFO cpu) per record. The request path's own cost of a record (`sink.submit`) is
the same for both stores and not counted here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from redis import Redis

from experiments.outcome import OutcomeRecord
from experiments.redis_store import RedisOutcomeStore
from experiments.sink import OutcomeBackend
from experiments.sqlite_store import SqliteOutcomeStore
from loadtests.redis_server import running_redis


def records(n: int) -> list[OutcomeRecord]:
    """`n` records like the benchmark's canary writes."""
    return [
        OutcomeRecord(
            request_id=f"0192d6f0-7c1e-7a3b-9c2d-{i:012x}",
            ts=1_765_000_000.0 + i / 1000,
            experiment="bench",
            variant="candidate" if i % 10 == 0 else "stable",
            p_variant=0.1 if i % 10 == 0 else 0.9,
            status=200,
            error=None,
            latency_ms=1.234,
            upstream_ms=0.987,
            unit=f"user-{i % 5000}",
            state_version=3,
            ttfb_ms=0.9,
            bytes_out=321,
            method="POST",
            path="/v2/models/digits/infer",
        )
        for i in range(n)
    ]


def cpu_per_record(store: OutcomeBackend, recs: Sequence[OutcomeRecord], batch: int) -> float:
    """Microseconds of this process's CPU per record written."""
    started = time.process_time()
    for start in range(0, len(recs), batch):
        store.write(recs[start : start + batch])
    return (time.process_time() - started) / len(recs) * 1e6


def server_cpu(client: Redis) -> float:
    """redis-server's CPU seconds so far (user + system)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main(argv: Sequence[str] | None = None) -> None:
    """Print one line per (store, batch size)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[20, 500])
    args = parser.parse_args(argv)
    recs = records(args.records)
    with tempfile.TemporaryDirectory() as tmp, running_redis(Path(tmp) / "redis.log") as server:
        client = Redis.from_url(server.url)
        for batch in args.batch:
            sqlite = SqliteOutcomeStore(Path(tmp) / f"bench-{batch}.db")
            own = cpu_per_record(sqlite, recs, batch)
            print(f"sqlite batch {batch:4}: {own:6.2f} µs CPU/record (writer)")
            sqlite.close()
            redis = RedisOutcomeStore(server.url)
            before = server_cpu(client)
            own = cpu_per_record(redis, recs, batch)
            theirs = (server_cpu(client) - before) / len(recs) * 1e6
            print(f"redis  batch {batch:4}: {own:6.2f} µs CPU/record (writer) + {theirs:5.2f} (redis-server)")
            redis.close()
        client.close()


if __name__ == "__main__":
    main()
