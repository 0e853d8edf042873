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

from proxy.dataplane.chain import Stage
from proxy.dataplane.errors import BadPath, TooManyRequests
from proxy.dataplane.exchange import Exchange, Reply
from proxy.dataplane.paths import normalise
from proxy.ratelimit.gcra import Decision, Gcra, LimiterStore, MemoryLimiterStore
from proxy.ratelimit.settings import RateLimitSettings, parse_key

_MAX_KEY_CHARS = 200  # longer keys (client-chosen headers) are hashed: the store's memory stays bounded


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
        self._apply(await self.store.acquire(self.key_of(ex), self.clock()))
        return await call_next(ex)

    def enter(self, ex: Exchange) -> bool:
        """The same, synchronously, when the budgets are in this process (False: they are in Redis)."""
        store = self.store
        if not isinstance(store, MemoryLimiterStore):
            return False
        self._apply(store.acquire_sync(self.key_of(ex), self.clock()))
        return True

    def _apply(self, decision: Decision) -> None:
        """Count the decision; TooManyRequests when it refuses."""
        if not decision.allowed:
            self.limited += 1
            retry_after = max(1, math.ceil(decision.retry_after_s))
            limit = f"rate limit of {self.settings.rate:g}/s (burst {self.settings.burst}) per {self.kind}"
            why = f"rate limiter unavailable ({decision.reason})" if decision.reason else f"{limit} exceeded"
            raise TooManyRequests(
                f"{why}; retry in {retry_after} s", headers={"Retry-After": str(retry_after)}
            )
        self.allowed += 1

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
