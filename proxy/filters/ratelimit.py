"""`ratelimit`: refuse requests over `rate`/s (plus `burst`) per key with 429 and Retry-After.

Usage: RateLimit(RateLimitSettings(rate=100, burst=20, key="claim:sub"))
Shared by replicas: `settings.redis_store()` (proxy.ratelimit.shared) passed as `store`, closed by the caller.
Keys: `client` (the address `client_ip` resolved, else the peer), `claim:NAME` (verified JWT claim),
`route` (path up to its third segment), `header:NAME`. A missing claim or header falls back to the client,
so an anonymous client gets its own budget rather than sharing one with every other anonymous client.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from proxy.dataplane.chain import Stage
from proxy.dataplane.errors import BadPath, TooManyRequests
from proxy.dataplane.exchange import Exchange, Reply
from proxy.dataplane.paths import normalise
from proxy.ratelimit.gcra import Gcra, LimiterStore, MemoryLimiterStore
from proxy.ratelimit.shared import ON_ERROR, OnError, RedisLimiterStore

_MAX_KEY_CHARS = 200  # longer keys (client-chosen headers) are hashed: the store's memory stays bounded


def parse_key(key: str) -> tuple[str, str]:
    """Split a key spec into (kind, name); raise ValueError if it is not one of the four forms."""
    kind, sep, name = key.partition(":")
    if kind in ("client", "route") and not sep:
        return kind, ""
    if kind in ("claim", "header") and sep and name.strip() == name and name:
        return kind, name
    raise ValueError(f"key must be 'client', 'route', 'claim:NAME' or 'header:NAME', got {key!r}")


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """One limit: `rate` requests/second per key, with `burst` admitted at once."""

    rate: float
    """Sustained requests per second per key (> 0)."""
    burst: int
    """Requests a fresh key may send at once (≥ 1)."""
    key: str = "client"
    """What a budget belongs to: client, route, claim:NAME or header:NAME."""
    store: Literal["memory", "redis"] = "memory"
    """Where the budgets live: this process, or a Redis that every replica shares (`redis_url`)."""
    redis_url: str | None = None
    """`redis://HOST:PORT/DB` (or `rediss://`, `unix://`) of the shared store."""
    on_store_error: OnError = "local"
    """What decides while Redis fails: `open` admits, `closed` refuses, `local` limits per replica."""
    redis_timeout_s: float = 0.05
    """Deadline of one Redis decision (connect, pool wait and reply included)."""

    def __post_init__(self) -> None:
        Gcra(self.rate, self.burst)  # the same checks the limiter applies
        parse_key(self.key)
        if self.store not in ("memory", "redis"):
            raise ValueError(f"store must be memory or redis, got {self.store!r}")
        if self.store == "redis" and not self.redis_url:
            raise ValueError("a redis store needs a redis URL")
        if self.on_store_error not in ON_ERROR:
            raise ValueError(
                f"on_store_error must be one of {', '.join(ON_ERROR)}, got {self.on_store_error!r}"
            )
        if not (math.isfinite(self.redis_timeout_s) and self.redis_timeout_s > 0):
            raise ValueError(f"redis timeout must be > 0 seconds, got {self.redis_timeout_s!r}")

    def redis_store(self) -> RedisLimiterStore | None:
        """The shared store these settings name (None for `memory`); the caller closes it."""
        if self.store != "redis" or self.redis_url is None:
            return None
        gcra = Gcra(self.rate, self.burst)
        return RedisLimiterStore(
            self.redis_url, gcra, on_error=self.on_store_error, timeout_s=self.redis_timeout_s
        )


class RateLimit:
    """Admits a request if its key has budget left, else raises TooManyRequests."""

    def __init__(
        self,
        settings: RateLimitSettings,
        store: LimiterStore | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.kind, self.name = parse_key(settings.key)
        self.store: LimiterStore = store or MemoryLimiterStore(Gcra(settings.rate, settings.burst))
        self.clock = clock
        self.allowed = 0
        self.limited = 0

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        """Continue if the key has budget; otherwise refuse with a whole-second Retry-After."""
        key = self.key_of(ex)
        decision = await self.store.acquire(key, self.clock())
        if not decision.allowed:
            self.limited += 1
            retry_after = max(1, math.ceil(decision.retry_after_s))
            limit = f"rate limit of {self.settings.rate:g}/s (burst {self.settings.burst}) per {self.kind}"
            why = f"rate limiter unavailable ({decision.reason})" if decision.reason else f"{limit} exceeded"
            raise TooManyRequests(
                f"{why}; retry in {retry_after} s", headers={"Retry-After": str(retry_after)}
            )
        self.allowed += 1
        return await call_next(ex)

    def key_of(self, ex: Exchange) -> str:
        """The store key for `ex`, prefixed by its kind so that different kinds never collide."""
        inbound = ex.inbound
        value: str | None = None
        if self.kind == "route":
            return "route:" + route_prefix(inbound.path)
        if self.kind == "claim" and ex.principal is not None:
            claim = ex.principal.get(self.name)
            value = None if claim in (None, "") else str(claim)
        elif self.kind == "header":
            value = inbound.headers.get(self.name) or None
        if value is None:
            # The resolved client, never a raw X-Forwarded-For: a spoofed header must not buy a fresh budget.
            client = ex.client.address if ex.client is not None else inbound.peer
            return f"client:{client or '-'}"
        return _bounded(f"{self.kind}:{self.name}={value}")


def route_prefix(path: str) -> str:
    """The normalised path without its query, cut after the third segment: `/v2/models/m/infer?x` →
    `/v2/models/m`. Normalised as routing will do (`proxy.dataplane.paths`), so `/v2/models/%6d` and
    `/v2//models/m`
    share `/v2/models/m`'s budget; a path routing will refuse is keyed as it was sent."""
    with contextlib.suppress(BadPath):
        path = normalise(path)
    segments = path.split("?", 1)[0].split("/")
    return "/".join(segments[:4]) or "/"


def _bounded(key: str) -> str:
    if len(key) <= _MAX_KEY_CHARS:
        return key
    return key[:64] + "#" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
