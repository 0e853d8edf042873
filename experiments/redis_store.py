"""The fleet's outcome store: one Redis Stream per experiment, appended in batches by every replica.

Usage: store = RedisOutcomeStore("redis://HOST:PORT/DB"); store.write(batch); rows = store.read_after(...)
Blocking like the SQLite store (callers on an event loop use a thread: `experiments.sink`, the controller).

A batch of the outcome sink becomes one stream entry per experiment (field `b`: the records as one JSON
array), all appended by one Lua script: one round trip and one `orjson.dumps` per batch, whatever its size,
which keeps the cost per request to a few microseconds. The script first checks the batch's key
(`outrider:batch:WRITER:N`, kept a day): a batch retried after a lost reply is not appended twice, and the
sink counts a batch as stored only once the script said it is in the stream (or was already).

For experiments with a `reward_mean` goal (`reward_window` says which, and their feedback window), the same
script also indexes each record by request id (`outrider:request:RID`, expiring with the window:
experiments.redis_feedback), so that any replica can take the feedback of a request another one answered.
Positions: experiments.redis_keys.
"""

from __future__ import annotations

import itertools
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from experiments import redis_feedback as fb
from experiments.outcome import OutcomeRecord
from experiments.redis_keys import PREFIX, TIMEOUT_S, client, entry_of, position

ENTRY_MAX = 4096
"""Records per stream entry at most (the index takes 12 bits of a position)."""
BATCH_TTL_S = 86_400

# KEYS[1]: the batch key, KEYS[2]: the record counts (a hash by experiment), KEYS[3 .. 2 + m]: the streams,
# then the index keys of the indexed records, in order; ARGV[1]: TTL of the batch key, ARGV[2]: m, then for
# each stream: experiment, number of records n, the entry, the index TTL (0: not indexed) and, when indexed,
# the n records' JSON. Checked first, set last: a script that fails half-way (e.g. Redis out of memory) is
# retried whole, so a record may then be stored twice but is never acknowledged without being stored.
APPEND = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local m = tonumber(ARGV[2])
local a, k = 3, 3 + m
for i = 3, 2 + m do
  local n, ttl = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 3])
  local id = redis.call('XADD', KEYS[i], '*', 'b', ARGV[a + 2])
  redis.call('HINCRBY', KEYS[2], ARGV[a], n)
  a = a + 4
  if ttl > 0 then
    for j = 0, n - 1 do
      redis.call('SET', KEYS[k], id .. ' ' .. j .. ' ' .. ARGV[a], 'NX', 'EX', ttl)
      k, a = k + 1, a + 1
    end
  end
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 1
"""
__all__ = ["PREFIX", "TIMEOUT_S", "RedisOutcomeStore", "client", "entry_of", "position", "stream_key"]


def stream_key(experiment: str, prefix: str = PREFIX) -> str:
    """The stream of `experiment`'s outcomes."""
    return f"{prefix}outcomes:{experiment}"


def writer_id() -> str:
    """Unique to this process: names its batch keys."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisOutcomeStore:
    """Appends outcome records to per-experiment streams and reads them back in stream order."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = PREFIX,
        reward_window: Callable[[str], float | None] = lambda name: None,
        index_grace_s: int = fb.INDEX_GRACE_S,
    ) -> None:
        self.url, self.prefix = url, prefix
        self.index_grace_s = index_grace_s
        """Seconds the request-id index outlives a feedback window (tests shorten it)."""
        self.reward_window = reward_window
        """The feedback window of an experiment whose records are indexed by request id (None: not indexed);
        called in the writing thread (a dict lookup of the router's)."""
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
        streams: list[str] = []
        index: list[str] = []
        args: list[bytes | str | int] = [BATCH_TTL_S, 0]
        for name, records in by_experiment.items():
            window = self.reward_window(name)
            for start in range(0, len(records), ENTRY_MAX):
                part = records[start : start + ENTRY_MAX]
                streams.append(stream_key(name, self.prefix))
                if window is None:
                    args += [name, len(part), orjson.dumps(part), 0]
                    continue
                docs = [orjson.dumps(r) for r in part]  # the entry and the index from one dumps per record
                ttl = max(1, round(window)) + self.index_grace_s
                args += [name, len(part), b"[" + b",".join(docs) + b"]", ttl, *docs]
                index += [fb.index_key(r.request_id, self.prefix) for r in part]
        args[1] = len(streams)
        self._append(keys=[self._key_of(batch), self._counts, *streams, *index], args=args)

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

    def read_raw(
        self,
        experiment: str,
        after_seq: int = 0,
        limit: int = 10_000,
        rewards: Mapping[int, float] | None = None,
    ) -> list[tuple[int, bytes]]:
        """(position, JSON document) after `after_seq` in stream order, about `limit` (whole entries), with
        their timely rewards joined in (as the SQLite store's export) from `rewards` (default: all of the
        experiment's, read from its feedback stream)."""
        rows = list(self._entries(experiment, after_seq, limit))
        if rewards is None:
            rewards = fb.timely_rewards(self._redis, self.prefix, experiment)
        for pos, doc in rows:
            if pos in rewards:
                doc["reward"] = rewards[pos]
        return [(pos, orjson.dumps(doc)) for pos, doc in rows]

    def read_after(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        """(position, record) of `experiment` after `after_seq`, in stream order (the controller's reader)."""
        return [
            (pos, OutcomeRecord.from_dict(doc)) for pos, doc in self._entries(experiment, after_seq, limit)
        ]

    def read_feedback(self, experiment: str, after_seq: int, limit: int) -> list[tuple[int, OutcomeRecord]]:
        """Timely rewards after `after_seq` (a position in `outrider:feedback:NAME`), in the order stored."""
        return fb.read_rewards(self._redis, self.prefix, experiment, after_seq, limit)

    def feedback_counts(self, experiment: str) -> dict[str, int]:
        """Feedback received for `experiment`: timely and late."""
        return fb.counts(self._redis, self.prefix, experiment)

    def iter_raw(self, experiment: str | None = None, page: int = 10_000) -> Iterator[bytes]:
        """Every stored record as JSON bytes, stream by stream, each in stream order (the export)."""
        for name in [experiment] if experiment is not None else self.experiments():
            after, rewards = 0, fb.timely_rewards(self._redis, self.prefix, name)
            while rows := self.read_raw(name, after, page, rewards):
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
