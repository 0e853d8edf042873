"""The fleet's dropped outcomes in Redis: every replica adds what its sink dropped, the leader's HOLD gate
reads the sum.

Usage:
    drops = {("exp", "candidate"): 12}                         # this process's sink, since it started
    ok = publish(redis, writer, drops, acked)                   # script call (blocking or asyncio client)
    fleet = parse_fleet(await redis.hgetall(fleet_key("exp")))  # variant → dropped, over the whole fleet

Keys (PREFIX `outrider:`):
- `drops:NAME` — a hash, variant → outcomes dropped by any replica, ever. Counts only grow (`HINCRBY`): a
  dropped record stays lost when its replica dies or restarts, so the gate must keep seeing it; a per-replica
  hash with a TTL would forget a dead replica's drops and open the gate again.
- `drops-sent:WRITER` — what one process has added so far (`NAME/VARIANT` → its count), so a publish retried
  after a lost reply adds nothing twice; refreshed on every publish, it expires a day after the last one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from experiments.redis_keys import PREFIX

SENT_TTL_S = 86_400

# KEYS[1]: the writer's sent hash, KEYS[2..]: the fleet hash of each item's experiment; ARGV[1]: TTL of the
# sent hash, then per item: NAME/VARIANT, variant, the count the writer knows was added, the count now.
# Adds now - added (as Redis saw it, else as the writer knows it) to the fleet's hash.
PUBLISH = """
for i = 2, #KEYS do
  local a = 2 + (i - 2) * 4
  local sent = tonumber(redis.call('HGET', KEYS[1], ARGV[a]) or ARGV[a + 2])
  local now = tonumber(ARGV[a + 3])
  if now > sent then
    redis.call('HINCRBY', KEYS[i], ARGV[a + 1], now - sent)
    redis.call('HSET', KEYS[1], ARGV[a], now)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


def fleet_key(experiment: str, prefix: str = PREFIX) -> str:
    """Variant → outcomes dropped by the fleet, of `experiment`."""
    return f"{prefix}drops:{experiment}"


def sent_key(writer: str, prefix: str = PREFIX) -> str:
    """What `writer` has added to the fleet's counts."""
    return f"{prefix}drops-sent:{writer}"


def publish_args(
    writer: str,
    now: Mapping[tuple[str, str], int],
    acked: Mapping[tuple[str, str], int],
    prefix: str = PREFIX,
) -> tuple[list[str], list[str | int]] | None:
    """(keys, args) of the PUBLISH script for the counts that grew since `acked`; None when none did."""
    grown = sorted(k for k, n in now.items() if n > acked.get(k, 0))
    if not grown:
        return None
    keys = [sent_key(writer, prefix)]
    args: list[str | int] = [SENT_TTL_S]
    for experiment, variant in grown:
        keys.append(fleet_key(experiment, prefix))
        key = (experiment, variant)
        args += [f"{experiment}/{variant}", variant, acked.get(key, 0), now[key]]
    return keys, args


def parse_fleet(raw: Mapping[Any, Any]) -> dict[str, int]:
    """A fleet hash as read (bytes) → variant → dropped."""
    return {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in raw.items()}
