"""Verified JWTs, remembered until they expire: a signature is checked once per token, not once per request.

Usage: `cache = TokenCache(); claims = cache.get(token)`; after a successful verification `cache.put(token,
claims)`.

The key is the whole token, signature included, so only the exact bytes that were verified hit the cache. An
entry lives until the token's `exp` (plus the leeway its verification allowed) and at most `max_age_s` (60 s
by default); it also remembers the key that verified it (`key_id`, `key`), and the caller uses a hit only
while that key is still the one in force, so a key retired by a refresh stops working at once. Failures are
never cached. The cache is bounded (least recently used entries go first), so a client minting tokens cannot
grow it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

MAX_ENTRIES = 10_000
MAX_AGE_S = 60.0


class Entry:
    """A verified token: its claims, until when they may be reused, and the key that verified them.
    (A plain class: this module is compiled, and mypyc's dataclasses take no field typed `object`.)"""

    __slots__ = ("claims", "key", "key_id", "until")

    def __init__(self, claims: Mapping[str, Any], until: float, key_id: str | None, key: object) -> None:
        self.claims: Final = claims
        self.until: Final = until
        self.key_id: Final = key_id
        self.key: Final = key


class TokenCache:
    """token → verified claims, until the earlier of the token's expiry and `max_age_s` from verification."""

    def __init__(
        self,
        leeway_s: float,
        max_entries: int = MAX_ENTRIES,
        max_age_s: float = MAX_AGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.leeway_s, self.max_entries, self.max_age_s, self.clock = leeway_s, max_entries, max_age_s, clock
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def get(self, token: str) -> Entry | None:
        """A token verified earlier and still within its lifetime, else None."""
        hit = self._entries.get(token)
        if hit is None:
            return None
        if self.clock() >= hit.until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return hit

    def put(
        self, token: str, claims: Mapping[str, Any], key_id: str | None = None, key: object = None
    ) -> None:
        """Remember a token that was just verified, and the key (id and object) that verified it."""
        exp = claims.get("exp")
        now = self.clock()
        until = now + self.max_age_s
        if isinstance(exp, int | float):
            until = min(until, float(exp) + self.leeway_s)
        if until <= now:
            return
        self._entries[token] = Entry(claims, until, key_id, key)
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
