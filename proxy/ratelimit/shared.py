"""A `LimiterStore` shared by every replica: GCRA in one atomic Lua script on Redis' own clock.

Usage: store = RedisLimiterStore("redis://127.0.0.1:6379/0", Gcra(100, 20)); d = await store.acquire(key, now)

The script reads the key's `tat`, decides exactly as `Gcra.check` does and writes the new `tat` in one step,
so replicas never race, and it reads `now` from Redis (`TIME`), so their clocks need not agree. The request
path cannot wait on Redis (docs/reliability.md): each call has one `timeout_s` deadline (socket, connect and
pool wait included), no retries, and a circuit breaker (5 consecutive errors open it for 1 s, then one probe).
While Redis fails or the breaker is open, `on_error` decides, and each such decision is counted:

- `open`: admit (the limit is off while Redis is away);
- `closed`: refuse with 429 and a Retry-After until the next probe (a 429, not a 503: clients already back
  off on it, and it does not count as outrider failing);
- `local`: a per-replica in-memory GCRA with the same rate and burst. Each replica then admits up to its own
  burst + rate, so N replicas admit up to N times the shared limit until Redis is back.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Literal, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError

from proxy.ratelimit.gcra import Decision, Gcra, MemoryLimiterStore
from proxy.settings.model import RateLimit
from proxy.telemetry.logs import event
from shadow.dispatch import Breaker

OnError = Literal["open", "closed", "local"]
ON_ERROR: Final = ("open", "closed", "local")
RESULTS: Final = ("ok", "error", "breaker_open")
PREFIX = "outrider:rl:"
BREAKER_ERRORS, BREAKER_OPEN_S = 5, 1.0
DECISION_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.06, 0.1, 0.25, 1.0)
"""Bounds of the decision-time histogram (seconds); 0.06 is docs/reliability.md's bound with Redis down."""

# KEYS[1]: the key; ARGV: interval, tolerance, slack (seconds, as `Gcra` has them), then `now` or '' for
# Redis' clock. The value is "ORIGIN TAT": times count from a per-key origin (whole seconds of Redis' clock
# when the key was made, moved on daily) because at epoch magnitudes (1.8e9 s) a double steps by 0.24 µs and
# a burst at one instant would lose its last request in about half of all rate/burst pairs; near the origin
# the arithmetic is `Gcra.check`'s, operation for operation. Numbers travel as '%.17g' text: Lua would
# truncate a returned number to an integer, and 17 digits give back the exact double. An idle key expires a
# second after its budget is full again (a missing key is a full budget: expiry never changes a decision).
LUA = """
local interval, tolerance, slack = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local sec, frac
if ARGV[4] ~= '' then
  local at = tonumber(ARGV[4])
  sec = math.floor(at)
  frac = at - sec
else
  local t = redis.call('TIME')
  sec, frac = tonumber(t[1]), tonumber(t[2]) / 1000000
end
local stored = redis.call('GET', KEYS[1])
local origin, tat = sec, nil
if stored then
  local o, v = string.match(stored, '^(%S+) (%S+)$')
  origin, tat = tonumber(o), tonumber(v)
end
local now = (sec - origin) + frac
tat = tat or now
local candidate = math.max(tat, now) + interval
local earliest = candidate - tolerance
if earliest > now + slack then
  return {0, string.format('%.17g', earliest - now), string.format('%.17g', now)}
end
local ttl_ms = math.ceil((candidate - now) * 1000) + 1000
local reply = {1, '0', string.format('%.17g', now)}
if now >= 86400 then
  local shift = math.floor(now)
  origin, candidate = origin + shift, candidate - shift
end
redis.call('SET', KEYS[1], string.format('%.17g %.17g', origin, candidate), 'PX', ttl_ms)
return reply
"""
LUA_SHA = hashlib.sha1(LUA.encode()).hexdigest()


def redis_client(url: str, timeout_s: float, max_connections: int) -> Redis:
    """A client that fails fast: `timeout_s` to connect, to read and to wait for a pooled connection, no
    retries (redis-py's defaults are 5 s-ish waits and 3 retries, far too slow for a request path)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis(connection_pool=pool)


_DEFAULTS = RateLimit()
"""`rateLimit.onStoreError` and `rateLimit.redisTimeout` when not given (the settings model declares them)."""


class RedisLimiterStore:
    """GCRA state in Redis, with a deadline, a circuit breaker and a counted fallback per `on_error`."""

    def __init__(
        self,
        url: str,
        gcra: Gcra,
        *,
        on_error: OnError = _DEFAULTS.on_store_error,
        timeout_s: float = _DEFAULTS.redis_timeout,
        max_connections: int = 16,
        prefix: str = PREFIX,
        breaker: Breaker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self.gcra, self.on_error, self.timeout_s, self.prefix = gcra, on_error, timeout_s, prefix
        self.client = redis_client(url, timeout_s, max_connections)
        self.breaker = breaker or Breaker(BREAKER_ERRORS, BREAKER_OPEN_S)
        self.clock = clock
        self.local = MemoryLimiterStore(gcra)
        self.results: dict[str, int] = dict.fromkeys(RESULTS, 0)
        """Store calls by result: `ok`, `error` (Redis failed or was too slow), `breaker_open` (not asked)."""
        self.fallbacks: dict[str, int] = dict.fromkeys(ON_ERROR, 0)
        """Decisions made without Redis, by the mode that made them."""
        self.decision_counts = [0] * (len(DECISION_BUCKETS) + 1)
        """Decisions by duration: a count per DECISION_BUCKETS bound (not cumulative), then one above all."""
        self.decision_sum = 0.0
        self.script_loads = 0
        """EVALSHA calls that met NOSCRIPT (Redis restarted or flushed its scripts) and sent the script."""
        self._args = (repr(gcra.interval), repr(gcra.tolerance), repr(gcra.slack))

    async def start(self, connections: int = 4) -> bool:
        """Open `connections` pooled connections and load the script, so that the first requests do not pay
        for them against their deadline. False (and logged) if Redis cannot be reached now: requests are then
        decided by `on_error` until it can."""
        try:
            async with asyncio.timeout(1.0):  # start-up, not the request path
                await asyncio.gather(*(self.client.ping() for _ in range(connections)))
                await self.client.script_load(LUA)
        except (RedisError, OSError, TimeoutError) as err:
            event("rate limit store unreachable", level=logging.WARNING, store="redis", error=repr(err))
            return False
        return True

    async def acquire(self, key: str, now: float) -> Decision:
        """Decide on Redis' clock; `now` (the caller's clock) only serves the `local` fallback."""
        start = time.perf_counter()
        try:
            return await self._decide(key, now)
        finally:
            seconds = time.perf_counter() - start
            self.decision_counts[bisect.bisect_left(DECISION_BUCKETS, seconds)] += 1
            self.decision_sum += seconds

    async def _decide(self, key: str, now: float) -> Decision:
        if not self.breaker.admits(self.clock()):
            return self._fallback("breaker_open", key, now)
        try:
            async with asyncio.timeout(self.timeout_s):
                decision, _ = await self.evaluate(key)
        except asyncio.CancelledError:
            self.breaker.probing = False  # a cancelled call proves nothing: the next one may probe
            raise
        except (RedisError, OSError, TimeoutError) as err:
            self._failed(err)
            return self._fallback("error", key, now)
        if self.breaker_open:
            event("rate limit store recovered", store="redis")
        self.breaker.record(True, self.clock())
        self.results["ok"] += 1
        return decision

    @property
    def breaker_open(self) -> bool:
        """Whether the breaker has opened (open, or half-open waiting for a probe to succeed)."""
        return self.breaker.failures >= self.breaker.limit

    async def evaluate(self, key: str, at: float | None = None) -> tuple[Decision, float]:
        """One script call without deadline, breaker or fallback: (decision, `now` from the key's origin).

        `at` replaces Redis' clock, so tests can compare the script with `Gcra.check` at chosen instants.
        """
        args = (*self._args, "" if at is None else repr(at))
        name = self.prefix + key
        try:
            reply = await self.client.evalsha(LUA_SHA, 1, name, *args)
        except NoScriptError:  # Redis restarted or SCRIPT FLUSH: EVAL runs and caches it again
            self.script_loads += 1
            reply = await self.client.eval(LUA, 1, name, *args)
        allowed, retry_after, redis_now = cast(list[Any], reply)
        return Decision(bool(allowed), float(retry_after)), float(redis_now)

    def _failed(self, err: BaseException) -> None:
        was_open = self.breaker_open
        self.breaker.record(False, self.clock())
        if not was_open and self.breaker_open:
            event(
                "rate limit store failing",
                level=logging.WARNING,
                store="redis",
                error=f"{type(err).__name__}: {err}",
                on_error=self.on_error,
                open_s=self.breaker.open_for,
            )

    def _fallback(self, result: str, key: str, now: float) -> Decision:
        self.results[result] += 1
        self.fallbacks[self.on_error] += 1
        if self.on_error == "open":
            return Decision(True, 0.0)
        if self.on_error == "closed":
            wait = max(1.0, self.breaker.open_until - self.clock())
            return Decision(False, wait, reason="store_unavailable")
        return self.local.acquire_sync(key, now)

    async def close(self) -> None:
        """Close the client and its connection pool."""
        await self.client.aclose(close_connection_pool=True)
