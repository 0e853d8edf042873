"""The verified-token cache: hits until expiry or max age, bounded, exact tokens only."""

from __future__ import annotations

from proxy.auth.token_cache import TokenCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_is_remembered_until_it_expires_with_the_leeway() -> None:
    clock = Clock()
    cache = TokenCache(leeway_s=30, clock=clock)
    cache.put("t", {"sub": "a", "exp": 1010})
    hit = cache.get("t")
    assert hit is not None
    assert hit.claims == {"sub": "a", "exp": 1010}
    clock.now = 1039.9
    assert cache.get("t") is not None
    clock.now = 1040.0
    assert cache.get("t") is None
    assert len(cache) == 0


def test_max_age_bounds_a_long_lived_token_and_past_tokens_are_not_kept() -> None:
    clock = Clock()
    cache = TokenCache(leeway_s=0, max_age_s=60, clock=clock)
    cache.put("long", {"exp": 10_000})
    cache.put("gone", {"exp": 999})
    assert cache.get("gone") is None
    clock.now = 1059
    assert cache.get("long") is not None
    clock.now = 1060
    assert cache.get("long") is None


def test_bounded_least_recently_used_first() -> None:
    cache = TokenCache(leeway_s=0, max_entries=2, clock=Clock())
    for name in ("a", "b"):
        cache.put(name, {"exp": 2000})
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", {"exp": 2000})
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
    assert cache.get("a-different-signature") is None
