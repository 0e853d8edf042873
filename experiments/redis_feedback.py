"""Rewards in the fleet's Redis store: any replica finds the outcome of a request id (whichever replica
answered it), stores its reward once, and the leader's controller reads the rewards in one order.

Usage:
    store = RedisFeedbackStore("redis://HOST:PORT/DB")        # the feedback endpoint's (blocking: a thread)
    found = store.find(request_id)                              # (position, record) or None
    stored = store.add_feedback(position, record, reward, ts, late)   # False: that outcome has one already
    rows = read_rewards(client, PREFIX, "exp", after, 10_000)  # the controller: (position, rewarded record)

Keys (PREFIX `outrider:`):
- `request:RID` — the index: `ENTRY INDEX RECORD` (the outcome's stream entry, its index there, the record's
  JSON), set by the outcome append script (`SET NX`: the first record of an id wins) for the records of
  experiments with a `reward_mean` goal only, expiring `feedbackWindow` + INDEX_GRACE_S after it was stored.
- `rewards:NAME` — a hash, outcome position → reward (`late:REWARD` for a late one); `HSETNX` makes each
  outcome's reward once, atomically, whichever replica took it; never expires (the export joins from it).
- `feedback:NAME` — a Stream of the timely rewards in the order they were stored (fields `p` position,
  `r` reward, `o` the record): the controller's read order, and its checkpoint's `feedback_seq`.
- `feedback-counts:NAME` — a hash: `timely`, `late`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from redis.exceptions import RedisError

from experiments.outcome import OutcomeRecord
from experiments.redis_keys import PREFIX, client, entry_of, position
from experiments.stores import StoreUnavailable

INDEX_GRACE_S = 60
"""Seconds the index outlives a request's feedback window: late feedback is still recognised (422, counted)
for a minute, and replicas' clocks may differ a little."""

# KEYS: rewards hash, feedback stream, counts hash; ARGV: position, reward, late (0/1), record JSON.
# 1: stored; 0: that outcome has a reward already (a duplicate, whichever replica took the first).
ADD_REWARD = """
local value = ARGV[2]
if ARGV[3] == '1' then value = 'late:' .. ARGV[2] end
if redis.call('HSETNX', KEYS[1], ARGV[1], value) == 0 then return 0 end
if ARGV[3] == '1' then
  redis.call('HINCRBY', KEYS[3], 'late', 1)
else
  redis.call('XADD', KEYS[2], '*', 'p', ARGV[1], 'r', ARGV[2], 'o', ARGV[4])
  redis.call('HINCRBY', KEYS[3], 'timely', 1)
end
return 1
"""


def index_key(request_id: str, prefix: str = PREFIX) -> str:
    """Where the outcome of `request_id` is found (ids: at most 200 characters, proxy.dataplane.edge)."""
    return f"{prefix}request:{request_id}"


def rewards_key(experiment: str, prefix: str = PREFIX) -> str:
    """Outcome position → reward of `experiment`."""
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


def joined_rewards(redis: Any, prefix: str, experiment: str, positions: Iterable[int]) -> dict[int, float]:
    """The timely rewards of the outcomes at `positions` (the export joins them in)."""
    wanted = list(positions)
    key = rewards_key(experiment, prefix)
    if not wanted or not redis.exists(key):
        return {}
    values = redis.hmget(key, [str(p) for p in wanted])
    return {p: float(v) for p, v in zip(wanted, values, strict=True) if v is not None and v[:1] != b"l"}


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
        keys = [
            rewards_key(record.experiment, self.prefix),
            feedback_key(record.experiment, self.prefix),
            counts_key(record.experiment, self.prefix),
        ]
        args: list[bytes | str | int] = [outcome_seq, repr(float(reward)), int(late), orjson.dumps(record)]
        try:
            return int(self._add(keys=keys, args=args)) == 1
        except RedisError as err:
            raise StoreUnavailable(str(err)) from err

    def close(self) -> None:
        """Close the connection."""
        self._redis.close()
