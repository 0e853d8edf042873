"""What a rate limit is: a rate and burst per key kind, where the budgets live, and what decides while the
shared store fails; checked once here (the settings file is checked by proxy.settings.model first).

Usage: limit = RateLimitSettings(rate=100, burst=20, key="claim:sub"); store = limit.redis_store()
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from proxy.ratelimit.gcra import Gcra
from proxy.ratelimit.shared import ON_ERROR, OnError, RedisLimiterStore
from proxy.settings.model import RateLimit

_DEFAULT = RateLimit()
"""The `rateLimit` section's defaults (proxy.settings.model declares them): these settings' defaults too."""


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
    key: str = _DEFAULT.key
    """What a budget belongs to: client, route, claim:NAME or header:NAME."""
    store: Literal["memory", "redis"] = _DEFAULT.store
    """Where the budgets live: this process, or a Redis that every replica shares (`redis_url`)."""
    redis_url: str | None = None
    """`redis://HOST:PORT/DB` (or `rediss://`, `unix://`) of the shared store."""
    on_store_error: OnError = _DEFAULT.on_store_error
    """What decides while Redis fails: `open` admits, `closed` refuses, `local` limits per replica."""
    redis_timeout_s: float = _DEFAULT.redis_timeout
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
