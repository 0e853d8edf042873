"""The fleet's experiment states in Redis: a versioned key per experiment, a notice on every change, and the
leader's lease whose fencing token every state write checks atomically.

Usage:
    store = RedisStateStore("redis://HOST:PORT/DB")
    token = store.acquire(owner, lease_ms)      # `SET NX PX`; None while another replica holds the lease
    store.fence(token); store.save(state)       # raises Fenced once the lease is someone else's (or gone)
    store.renew(token, lease_ms)                # False: the lease was lost, step down
Blocking (callers on an event loop use a thread). The lease's value is `TOKEN:OWNER`, TOKEN from
`INCR outrider:fence` (it only grows). Every write of the leader (state, checkpoint, lease renewal) is a Lua
script that first compares the lease's value with the writer's: a leader paused past its lease wakes up with
a value that is no longer there, so nothing it writes lands, whatever it believes. With `retention_s`
(`storeRetention`) the checkpoint's script also trims what the controller has consumed from the streams:
    store = RedisStateStore(url, retention_s=86_400.0); store.save_checkpoint(name, blob, (outcome, feedback))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from experiments.redis_feedback import feedback_key
from experiments.redis_store import PREFIX, client, stream_key
from experiments.state import ExperimentState
from experiments.state_store import state_from_json

CHANNEL = f"{PREFIX}states"
"""Pub/sub channel: `NAME VERSION` after every stored state (followers also poll: a notice may be lost)."""

ACQUIRE = """
if redis.call('SET', KEYS[1], 'taking', 'NX', 'PX', ARGV[2]) then
  local value = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1]
  redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
  return value
end
return false
"""
RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""
# KEYS: lease, versions hash, state key; ARGV: lease value, experiment, version, state JSON, channel.
# -1: fenced (the writer's lease is gone), 0: a version ≥ this one is stored already, 1: stored.
SAVE_STATE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local stored = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '-1')
if stored >= tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], ARGV[2] .. ' ' .. ARGV[3])
return 1
"""
# KEYS: lease, checkpoint key, outcome stream, feedback stream; ARGV: lease value, the checkpoint, then the
# MINID of each stream ('': keep it whole). -1: fenced; else the stream entries trimmed (`~`: whole nodes).
CHECKPOINT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
local n = 0
for i = 3, 4 do
  if ARGV[i] ~= '' then n = n + redis.call('XTRIM', KEYS[i], 'MINID', '~', ARGV[i]) end
end
return n
"""
# KEYS: lease, the key to set; ARGV: lease value, the value.
FENCED_SET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""


class Fenced(Exception):
    """A write refused because the writer no longer holds the lease (another replica leads now)."""


class RedisStateStore:
    """Latest state per experiment, the lease, the controllers' checkpoints (reads as SqliteStateStore's)."""

    def __init__(self, url: str, *, prefix: str = PREFIX, retention_s: float | None = None) -> None:
        self.url, self.prefix = url, prefix
        self.retention_s = retention_s
        """`storeRetention`: with every checkpoint, stream entries older than this before what the checkpoint
        has consumed are trimmed; None keeps the streams whole (the export then reproduces the decisions)."""
        self.trimmed = 0
        """Stream entries trimmed by this store's checkpoints."""
        self.redis: Any = client(url)  # redis-py's reply types are unions of everything
        self.lease_key, self.fence_key = f"{prefix}lease", f"{prefix}fence"
        self.versions_key = f"{prefix}versions"
        self.token: str | None = None
        """The lease value this store's writes are fenced with (`fence`)."""
        self.refused = 0
        """Writes refused by fencing."""
        self.on_refused: Callable[[], None] = lambda: None
        """Called (in the writing thread) after a refused write."""
        self._acquire = self.redis.register_script(ACQUIRE)
        self._renew = self.redis.register_script(RENEW)
        self._release = self.redis.register_script(RELEASE)
        self._save = self.redis.register_script(SAVE_STATE)
        self._set = self.redis.register_script(FENCED_SET)
        self._checkpoint = self.redis.register_script(CHECKPOINT)

    def state_key(self, experiment: str) -> str:
        """Where `experiment`'s state is."""
        return f"{self.prefix}state:{experiment}"

    # the lease
    def acquire(self, owner: str, lease_ms: int) -> str | None:
        """Take the lease if nobody holds it: its value (`TOKEN:OWNER`), else None."""
        value = self._acquire(keys=[self.lease_key, self.fence_key], args=[owner, lease_ms])
        return None if value is None else bytes(value).decode()

    def renew(self, token: str, lease_ms: int) -> bool:
        """Extend the lease if it is still `token`'s; False: lost (counted as a refused write)."""
        if int(self._renew(keys=[self.lease_key], args=[token, lease_ms])) == 1:
            return True
        self.refused += 1
        self.on_refused()
        return False

    def release(self, token: str) -> None:
        """Give the lease up if it is still `token`'s (another replica can take it at once)."""
        self._release(keys=[self.lease_key], args=[token])

    def holder(self) -> str | None:
        """The lease's value now (None: nobody leads)."""
        value = self.redis.get(self.lease_key)
        return None if value is None else bytes(value).decode()

    def fence(self, token: str | None) -> None:
        """Fence every later write with `token` (None: writes are refused)."""
        self.token = token

    def _check(self, result: Any, what: str) -> int:
        if int(result) == -1:
            self.refused += 1
            self.on_refused()
            raise Fenced(f"{what} refused: the lease {self.token!r} is no longer held")
        return int(result)

    # states (the interface of experiments.state_store.SqliteStateStore)
    def load(self, experiment: str) -> ExperimentState | None:
        """The stored state, or None."""
        raw = self.redis.get(self.state_key(experiment))
        return None if raw is None else state_from_json(orjson.loads(raw))

    def versions(self) -> dict[str, int]:
        """The stored version of every experiment (one HGETALL: cheap to poll)."""
        return {k.decode(): int(v) for k, v in self.redis.hgetall(self.versions_key).items()}

    def save(self, state: ExperimentState) -> bool:
        """Store `state` unless a version ≥ its own is stored; True if stored; Fenced if the lease is lost."""
        keys = [self.lease_key, self.versions_key, self.state_key(state.experiment)]
        blob = orjson.dumps(state.to_json())
        args: list[bytes | str | int] = [self.token or "", state.experiment, state.version, blob, CHANNEL]
        return (
            self._check(self._save(keys=keys, args=args), f"state {state.experiment} v{state.version}") == 1
        )

    def save_config(self, experiment: str, source: str, text: str) -> None:
        """Keep the experiment file in force (fenced like every write of the leader)."""
        doc = orjson.dumps({"source": source, "text": text})
        key = f"{self.prefix}config:{experiment}"
        self._check(self._set(keys=[self.lease_key, key], args=[self.token or "", doc]), "config")

    def load_config(self, experiment: str) -> tuple[str, str] | None:
        """(source, text) of the experiment file last run, or None."""
        raw = self.redis.get(f"{self.prefix}config:{experiment}")
        if raw is None:
            return None
        doc = orjson.loads(raw)
        return str(doc["source"]), str(doc["text"])

    def experiments(self) -> list[str]:
        """Names of the experiments with a stored state."""
        return sorted(self.versions())

    # the controllers' checkpoints
    def save_checkpoint(self, experiment: str, blob: bytes, consumed: tuple[int, int] = (0, 0)) -> None:
        """Store a controller's checkpoint (fenced) and, with a retention, trim the outcome and feedback
        streams up to `consumed` (the positions the checkpoint has read up to) less the retention."""
        keys = [
            self.lease_key,
            f"{self.prefix}checkpoint:{experiment}",
            stream_key(experiment, self.prefix),
            feedback_key(experiment, self.prefix),
        ]
        args: list[bytes | str] = [self.token or "", blob, *(self._min_id(seq) for seq in consumed)]
        self.trimmed += self._check(self._checkpoint(keys=keys, args=args), "checkpoint")

    def _min_id(self, seq: int) -> str:
        """The MINID that trims a stream to `retention_s` before position `seq` ('': nothing to trim)."""
        if self.retention_s is None or seq <= 0:
            return ""
        return str(max(0, (seq >> 32) - round(self.retention_s * 1000)))

    def load_checkpoint(self, experiment: str) -> bytes | None:
        """The last checkpoint of `experiment`'s controller, or None."""
        raw = self.redis.get(f"{self.prefix}checkpoint:{experiment}")
        return None if raw is None else bytes(raw)

    def close(self) -> None:
        """Close the connections."""
        self.redis.close()
