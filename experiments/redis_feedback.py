"""Rewards in the fleet's Redis store: any replica finds the outcome of a request id (whichever replica
answered it), stores its reward once, and the leader's controller reads the rewards in one order.

Usage:
    store = RedisFeedbackStore("redis://HOST:PORT/DB")        # the feedback endpoint's (blocking: a thread)
    found = store.find(request_id)                              # (position, record) or None
    stored = store.add_feedback(position, record, reward, ts, late)   # False: that outcome has one already
    rows = read_rewards(client, PREFIX, "exp", after, 10_000)  # the controller: (position, rewarded record)
    joined = timely_rewards(client, PREFIX, "exp")             # the export: outcome position → reward

Keys (PREFIX `outrider:`), each bounded:
- `request:RID` — the index: `ENTRY INDEX RECORD` (the outcome's stream entry, its index there, the record's
  JSON), set by the outcome append script (`SET NX`: the first record of an id wins) for the records of
  experiments with a `reward_mean` goal only, expiring `feedbackWindow` + INDEX_GRACE_S after it was stored.
- `reward:NAME:POSITION` — the reward of one outcome (`late:REWARD` for a late one): `SET NX` makes it once,
  atomically, whichever replica took it; it expires with the outcome's index (after which no post can find
  the outcome, so none can be stored twice).
- `feedback:NAME` — a Stream of the timely rewards in the order they were stored (fields `p` position,
  `r` reward, `o` the record): the controller's read order, its checkpoint's `feedback_seq`, and what the
  export joins in; trimmed with the outcome stream when `storeRetention` is set (experiments.redis_state).
- `feedback-counts:NAME` — a hash: `timely`, `late`.
- `rewards:NAME` — the hash of outcome position → reward that versions before 2026-12-08 kept (never
  expiring): still consulted so that a reward stored there is not taken twice; nothing is added to it.
"""

from __future__ import annotations

from typing import Any

import orjson
from redis.exceptions import RedisError

from experiments.outcome import OutcomeRecord
from experiments.redis_keys import PREFIX, client, entry_of, position
from experiments.stores import StoreUnavailable

INDEX_GRACE_S = 60
"""Seconds the index outlives a request's feedback window: late feedback is still recognised (422, counted)
for a minute, and replicas' clocks may differ a little."""

# KEYS: the outcome's reward key, its index key, feedback stream, counts hash, the old rewards hash; ARGV:
# position, reward, late (0/1), record JSON, TTL (s) if the index has expired meanwhile.
# 1: stored; 0: that outcome has a reward already (a duplicate, whichever replica took the first).
ADD_REWARD = """
if redis.call('HEXISTS', KEYS[5], ARGV[1]) == 1 then return 0 end
local value = ARGV[2]
if ARGV[3] == '1' then value = 'late:' .. ARGV[2] end
local ttl = redis.call('PTTL', KEYS[2])
if ttl <= 0 then ttl = tonumber(ARGV[5]) * 1000 end
if not redis.call('SET', KEYS[1], value, 'NX', 'PX', ttl) then return 0 end
if ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[4], 'late', 1)
else
  redis.call('XADD', KEYS[3], '*', 'p', ARGV[1], 'r', ARGV[2], 'o', ARGV[4])
  redis.call('HINCRBY', KEYS[4], 'timely', 1)
end
return 1
"""


def index_key(request_id: str, prefix: str = PREFIX) -> str:
    """Where the outcome of `request_id` is found (ids: at most 200 characters, proxy.dataplane.edge)."""
    return f"{prefix}request:{request_id}"


def reward_key(experiment: str, position: int, prefix: str = PREFIX) -> str:
    """The reward of the outcome of `experiment` at `position` (expires with its index)."""
    return f"{prefix}reward:{experiment}:{position}"


def rewards_key(experiment: str, prefix: str = PREFIX) -> str:
    """The old, never expiring hash of outcome position → reward of `experiment` (read, never written)."""
    return f"{prefix}rewards:{experiment}"


def feedback_key(experiment: str, prefix: str = PREFIX) -> str:
    """The stream of `experiment`'s timely rewards."""
    return f"{prefix}feedback:{experiment}"


def counts_key(experiment: str, prefix: str = PREFIX) -> str:
    """Feedback received for `experiment`: timely and late."""
    return f"{prefix}feedback-counts:{experiment}"


def read_rewards(
    redis: Any, prefix: str, experiment: str, after_seq: int, limit: int
) -> list[tuple[int, OutcomeRecord]]:
    """Timely rewards after `after_seq` in the order they were stored: (position in the feedback stream, the
    outcome with its reward)."""
    start = "-" if after_seq <= 0 else f"({entry_of(after_seq)[0]}"
    out: list[tuple[int, OutcomeRecord]] = []
    for entry_id, fields in redis.xrange(feedback_key(experiment, prefix), start, "+", count=limit):
        record = OutcomeRecord.from_dict(orjson.loads(fields[b"o"]))
        record.reward = float(fields[b"r"])
        out.append((position(entry_id, 0), record))
    return out


def timely_rewards(redis: Any, prefix: str, experiment: str, page: int = 10_000) -> dict[int, float]:
    """Outcome position → timely reward of every reward the feedback stream holds (the export joins them)."""
    out: dict[int, float] = {}
    start, key = "-", feedback_key(experiment, prefix)
    while rows := redis.xrange(key, start, "+", count=page):
        for _, fields in rows:
            out.setdefault(int(fields[b"p"]), float(fields[b"r"]))
        start = "(" + rows[-1][0].decode()
    return out


def counts(redis: Any, prefix: str, experiment: str) -> dict[str, int]:
    """Feedback received for `experiment`: timely and late."""
    got = redis.hgetall(counts_key(experiment, prefix))
    return {"timely": int(got.get(b"timely", 0)), "late": int(got.get(b"late", 0))}


class RedisFeedbackStore:
    """The feedback endpoint's view of the Redis store: find an outcome by request id, store a reward once."""

    def __init__(self, url: str, *, prefix: str = PREFIX) -> None:
        self.prefix = prefix
        self._redis: Any = client(url)
        self._add = self._redis.register_script(ADD_REWARD)

    def find(self, request_id: str) -> tuple[int, OutcomeRecord] | None:
        """(position, record) of the first stored outcome with this request id, while its index lasts."""
        try:
            raw = self._redis.get(index_key(request_id, self.prefix))
        except RedisError as err:
            raise StoreUnavailable(str(err)) from err
        if raw is None:
            return None
        entry, index, doc = bytes(raw).split(b" ", 2)
        return position(entry, int(index)), OutcomeRecord.from_dict(orjson.loads(doc))

    def add_feedback(
        self, outcome_seq: int, record: OutcomeRecord, reward: float, ts: float, late: bool
    ) -> bool:
        """Store `reward` for the outcome at `outcome_seq`; False if it has one already (atomic, fleet-wide).
        `ts` (when it arrived) is not kept: the statistics use the record's own clock."""
        name = record.experiment
        keys = [
            reward_key(name, outcome_seq, self.prefix),
            index_key(record.request_id, self.prefix),
            feedback_key(name, self.prefix),
            counts_key(name, self.prefix),
            rewards_key(name, self.prefix),
        ]
        reward_text = repr(float(reward))
        args: list[bytes | str | int] = [
            outcome_seq,
            reward_text,
            int(late),
            orjson.dumps(record),
            INDEX_GRACE_S,
        ]
        try:
            return int(self._add(keys=keys, args=args)) == 1
        except RedisError as err:
            raise StoreUnavailable(str(err)) from err

    def close(self) -> None:
        """Close the connection."""
        self._redis.close()
