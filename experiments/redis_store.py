"""The fleet's outcome store: one Redis Stream per experiment, appended in batches by every replica.

Usage: store = RedisOutcomeStore("redis://HOST:PORT/DB"); store.write(batch); rows = store.read_after(...)
Blocking like the SQLite store (callers on an event loop use a thread: `experiments.sink`, the controller).

A batch of the outcome sink becomes one stream entry per experiment (field `b`: the records as one JSON
array), all appended by one Lua script: one round trip and one `orjson.dumps` per batch, whatever its size,
which keeps the cost per request to a few microseconds. The script first checks the batch's key
(`outrider:batch:WRITER:N`, kept a day): a batch retried after a lost reply is not appended twice, and the
sink counts a batch as stored only once the script said it is in the stream (or was already).

A record's position (the `seq` the controller and the feedback use) is an integer made of its entry's id
and its index in the entry: `(ms << 32) | (n << 12) | index` for entry id `ms-n`, so positions grow in
stream order exactly as SQLite's seq does.
"""

from __future__ import annotations

import itertools
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from redis import Redis

from experiments.outcome import OutcomeRecord

PREFIX = "outrider:"
ENTRY_MAX = 4096
"""Records per stream entry at most (the index takes 12 bits of a position)."""
BATCH_TTL_S = 86_400
TIMEOUT_S = 2.0
"""Socket and connect timeout of the store's connections (threads wait at most this long on a dead Redis)."""

# KEYS[1]: the batch key, KEYS[2]: the record counts (a hash by experiment), KEYS[3..]: the streams;
# ARGV[1]: TTL of the batch key, then for each stream: experiment, number of records, the entry.
# Checked first, set last: a script that fails half-way (e.g. Redis out of memory) is retried whole, so a
# record may then be stored twice but is never acknowledged without being stored.
APPEND = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 3, #KEYS do
  local a = 2 + (i - 3) * 3
  redis.call('XADD', KEYS[i], '*', 'b', ARGV[a + 2])
  redis.call('HINCRBY', KEYS[2], ARGV[a], ARGV[a + 1])
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""


def stream_key(experiment: str, prefix: str = PREFIX) -> str:
    """The stream of `experiment`'s outcomes."""
    return f"{prefix}outcomes:{experiment}"


def client(url: str, timeout_s: float = TIMEOUT_S) -> Redis:
    """A blocking client with bounded waits (a thread never hangs on a dead Redis)."""
    return Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


def position(entry_id: bytes | str, index: int) -> int:
    """The integer position of record `index` of stream entry `entry_id` (`ms-n`)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, n = text.split("-")
    return (int(ms) << 32) | (int(n) << 12) | index


def entry_of(pos: int) -> tuple[str, int]:
    """Inverse of `position`: (entry id, index)."""
    return f"{pos >> 32}-{(pos >> 12) & 0xFFFFF}", pos & 0xFFF


def writer_id() -> str:
    """Unique to this process: names its batch keys."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisOutcomeStore:
    """Appends outcome records to per-experiment streams and reads them back in stream order."""

    def __init__(self, url: str, *, prefix: str = PREFIX) -> None:
        self.url, self.prefix = url, prefix
        self._redis: Any = client(url)  # redis-py's reply types are unions of everything
        self._append = self._redis.register_script(APPEND)
        self._writer = writer_id()
        self._numbers = itertools.count(1)
        self._batch: Sequence[OutcomeRecord] | None = None
        self._batch_key = ""
        self._counts = f"{prefix}counts"

    def _key_of(self, batch: Sequence[OutcomeRecord]) -> str:
        # The sink retries the very same list after a failure: it keeps its key, so a retry after a lost
        # reply is recognised by the script.
        if batch is not self._batch:
            self._batch, self._batch_key = batch, f"{self.prefix}batch:{self._writer}:{next(self._numbers)}"
        return self._batch_key

    def write(self, batch: Sequence[OutcomeRecord]) -> None:
        """Append `batch` (all or nothing, once even if retried); raises RedisError when Redis fails."""
        if not batch:
            return
        by_experiment: dict[str, list[OutcomeRecord]] = defaultdict(list)
        for record in batch:
            by_experiment[record.experiment].append(record)
        keys: list[str] = [self._key_of(batch), self._counts]
        args: list[bytes | str | int] = [BATCH_TTL_S]
        for name, records in by_experiment.items():
            for start in range(0, len(records), ENTRY_MAX):
                part = records[start : start + ENTRY_MAX]
                keys.append(stream_key(name, self.prefix))
                args += [name, len(part), orjson.dumps(part)]
        self._append(keys=keys, args=args)

    def experiments(self) -> list[str]:
        """Names of the experiments that have records."""
        return sorted(k.decode() for k in self._redis.hkeys(self._counts))

    def _entries(
        self, experiment: str, after_seq: int, limit: int
    ) -> Iterator[tuple[int, dict[str, object]]]:
        start, skip = ("-", -1) if after_seq <= 0 else entry_of(after_seq)
        key = stream_key(experiment, self.prefix)
        for entry_id, fields in self._redis.xrange(key, start, "+", count=max(1, limit // 200)):
            docs = orjson.loads(fields[b"b"])
            first = skip + 1 if entry_id.decode() == start else 0
            for i in range(first, len(docs)):
                yield position(entry_id, i), docs[i]

    def read_raw(self, experiment: str, after_seq: int = 0, limit: int = 10_000) -> list[tuple[int, bytes]]:
        """(position, JSON document) after `after_seq` in stream order, about `limit` (whole entries)."""
        return [(pos, orjson.dumps(doc)) for pos, doc in self._entries(experiment, after_seq, limit)]

    def read_after(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        """(position, record) of `experiment` after `after_seq`, in stream order (the controller's reader)."""
        return [
            (pos, OutcomeRecord.from_dict(doc)) for pos, doc in self._entries(experiment, after_seq, limit)
        ]

    def read_feedback(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        """Rewards are not kept in Redis yet (docs/scale-out.md): none."""
        return []

    def feedback_counts(self, experiment: str) -> dict[str, int]:
        """No feedback in Redis yet."""
        return {"timely": 0, "late": 0}

    def iter_raw(self, experiment: str | None = None, page: int = 10_000) -> Iterator[bytes]:
        """Every stored record as JSON bytes, stream by stream, each in stream order (the export)."""
        for name in [experiment] if experiment is not None else self.experiments():
            after = 0
            while rows := self.read_raw(name, after, page):
                after = rows[-1][0]
                for _, raw in rows:
                    yield raw

    def max_seq(self, experiment: str) -> int:
        """The position of the newest record of `experiment` (0 if none)."""
        last = self._redis.xrevrange(stream_key(experiment, self.prefix), "+", "-", count=1)
        if not last:
            return 0
        entry_id, fields = last[0]
        return position(entry_id, len(orjson.loads(fields[b"b"])) - 1)

    def count(self, experiment: str | None = None) -> int:
        """Number of stored records (kept by the append script)."""
        if experiment is None:
            return sum(int(v) for v in self._redis.hvals(self._counts))
        return int(self._redis.hget(self._counts, experiment) or 0)

    def close(self) -> None:
        """Close the connections."""
        self._redis.close()
