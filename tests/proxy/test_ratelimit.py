"""`ratelimit` and `proxy.ratelimit.gcra` with a fake clock: exact GCRA values, the RELIABILITY target, keys,
LRU."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.dataplane.errors import TooManyRequests
from proxy.dataplane.exchange import Exchange, Inbound, Reply
from proxy.filters.ratelimit import RateLimit, route_prefix
from proxy.ratelimit.gcra import Gcra, MemoryLimiterStore
from proxy.ratelimit.settings import RateLimitSettings


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def exchange(
    path: str = "/v2/models/m/infer",
    headers: dict[str, str] | None = None,
    peer: str | None = "10.0.0.1",
    principal: Mapping[str, Any] | None = None,
) -> Exchange:
    inbound = Inbound(
        "POST",
        path,
        CIMultiDictProxy(CIMultiDict(headers or {})),
        b"{}",
        peer,
        time.time(),
        time.monotonic(),
        "r",
    )
    ex = Exchange(inbound)
    ex.principal = principal
    return ex


async def terminal(ex: Exchange) -> Reply:
    return Reply(200, CIMultiDict(), b"")


async def admitted(limit: RateLimit, ex: Exchange) -> bool:
    try:
        await limit(ex, terminal)
    except TooManyRequests:
        return False
    return True


def run(gcra: Gcra, times: list[float]) -> list[bool]:
    tat, out = times[0] if times else 0.0, []
    for now in times:
        allowed, tat, _ = gcra.check(tat, now)
        out.append(allowed)
    return out


# --- GCRA core ---------------------------------------------------------------------------------------


def test_burst_then_exact_retry_after() -> None:
    gcra, tat = Gcra(rate=100, burst=20), 0.0
    for _ in range(20):
        allowed, tat, retry = gcra.check(tat, 0.0)
        assert allowed
        assert retry == 0.0
    allowed, new_tat, retry = gcra.check(tat, 0.0)
    assert not allowed
    assert new_tat == tat  # a refusal costs nothing
    assert retry == pytest.approx(0.01)
    allowed, _, _ = gcra.check(tat, retry)
    assert allowed


def test_steady_rate_is_admitted_after_the_burst() -> None:
    times = [0.0] * 20 + [i / 100 for i in range(1, 1001)]
    assert all(run(Gcra(rate=100, burst=20), times))


def test_idle_key_refills_to_burst_not_beyond() -> None:
    decisions = run(Gcra(rate=10, burst=3), [0.0] * 3 + [100.0] * 4)
    assert decisions == [True] * 3 + [True] * 3 + [False]


def test_retry_after_for_slow_rate() -> None:
    gcra = Gcra(rate=0.1, burst=1)
    _, tat, _ = gcra.check(0.0, 0.0)
    allowed, _, retry = gcra.check(tat, 2.5)
    assert not allowed
    assert retry == pytest.approx(7.5)


@pytest.mark.parametrize(
    ("rate", "burst"),
    [(0, 1), (-1, 1), (math.nan, 1), (math.inf, 1), (1, 0), (1, -3), (1, 1.5), (1, True), (True, 1)],
)
def test_gcra_rejects_bad_parameters(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        Gcra(rate, burst)


@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    burst=st.integers(min_value=1, max_value=50),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=300),
)
def test_accepted_never_exceeds_burst_plus_rate_times_span(
    rate: float, burst: int, gaps: list[float]
) -> None:
    times = list(accumulate(gaps))
    accepted = sum(run(Gcra(rate, burst), times))
    assert accepted <= burst + rate * (times[-1] - times[0]) + 1


# --- store -------------------------------------------------------------------------------------------


def test_lru_bound_evicts_least_recently_used() -> None:
    store = MemoryLimiterStore(Gcra(rate=0.001, burst=1), max_keys=2)
    assert store.acquire_sync("a", 0.0).allowed
    assert store.acquire_sync("b", 0.0).allowed
    assert not store.acquire_sync("a", 1.0).allowed  # touches a: b is now the oldest
    assert store.acquire_sync("c", 1.0).allowed
    assert len(store) == 2
    assert "b" not in store
    assert "a" in store
    assert store.evicted == 1
    assert store.acquire_sync("b", 2.0).allowed  # evicted ⇒ fresh: only ever more permissive
    assert not store.acquire_sync("c", 2.0).allowed


def test_store_rejects_zero_keys() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemoryLimiterStore(Gcra(1, 1), max_keys=0)


# --- filter ------------------------------------------------------------------------------------------


async def test_reliability_target_300_rps_for_10_s() -> None:
    clock = FakeClock()
    limit = RateLimit(RateLimitSettings(rate=100, burst=20), clock=clock)
    for i in range(3000):
        clock.now = 1000.0 + i / 300
        await admitted(limit, exchange())
    assert limit.allowed == pytest.approx(1020, rel=0.02)
    assert limit.allowed == 1019  # golden: burst 20 + 100/s over 9.997 s (last arrival at 2999/300 s)
    assert limit.allowed + limit.limited == 3000


async def test_429_carries_whole_second_retry_after() -> None:
    clock = FakeClock(5.0)
    limit = RateLimit(RateLimitSettings(rate=100, burst=2), clock=clock)
    assert await admitted(limit, exchange())
    assert await admitted(limit, exchange())
    with pytest.raises(TooManyRequests) as info:
        await limit(exchange(), terminal)
    assert info.value.status == 429
    assert info.value.headers == {"Retry-After": "1"}  # 10 ms rounds up to the minimum of 1 s
    slow = RateLimit(RateLimitSettings(rate=0.4, burst=1), clock=clock)
    assert await admitted(slow, exchange())
    with pytest.raises(TooManyRequests) as info:
        await slow(exchange(), terminal)
    assert info.value.headers == {"Retry-After": "3"}  # 2.5 s, ceiled
    assert (limit.allowed, limit.limited, slow.allowed, slow.limited) == (2, 1, 1, 1)


async def test_clients_are_independent() -> None:
    limit = RateLimit(RateLimitSettings(rate=1, burst=1), clock=FakeClock())
    assert await admitted(limit, exchange(peer="10.0.0.1"))
    assert not await admitted(limit, exchange(peer="10.0.0.1"))
    assert await admitted(limit, exchange(peer="10.0.0.2"))


async def test_claim_key_and_fallback_to_peer() -> None:
    limit = RateLimit(RateLimitSettings(rate=1, burst=1, key="claim:sub"), clock=FakeClock())
    assert limit.key_of(exchange(principal={"sub": "alice"})) == "claim:sub=alice"
    assert limit.key_of(exchange(principal={"sub": 42})) == "claim:sub=42"
    assert limit.key_of(exchange(principal=None, peer="10.0.0.9")) == "client:10.0.0.9"
    assert limit.key_of(exchange(principal={"sub": ""}, peer="10.0.0.9")) == "client:10.0.0.9"
    assert limit.key_of(exchange(principal={}, peer=None)) == "client:-"
    # the same peer as two users gets two budgets; anonymous from that peer gets a third
    assert await admitted(limit, exchange(principal={"sub": "alice"}))
    assert await admitted(limit, exchange(principal={"sub": "bob"}))
    assert await admitted(limit, exchange(principal=None))
    assert not await admitted(limit, exchange(principal={"sub": "alice"}))


async def test_route_and_header_keys() -> None:
    by_route = RateLimit(RateLimitSettings(rate=1, burst=1, key="route"), clock=FakeClock())
    assert by_route.key_of(exchange("/v2/models/m/infer?x=1")) == "route:/v2/models/m"
    assert await admitted(by_route, exchange("/v2/models/m/infer", peer="a"))
    assert not await admitted(by_route, exchange("/v2/models/m/ready", peer="b"))
    assert await admitted(by_route, exchange("/v2/models/other/infer", peer="a"))

    by_header = RateLimit(RateLimitSettings(rate=1, burst=1, key="header:X-Api-Key"), clock=FakeClock())
    assert by_header.key_of(exchange(headers={"x-api-key": "k1"})) == "header:X-Api-Key=k1"
    assert by_header.key_of(exchange(peer="10.0.0.3")) == "client:10.0.0.3"
    long_key = by_header.key_of(exchange(headers={"x-api-key": "k" * 10_000}))
    assert len(long_key) < 200


@pytest.mark.parametrize(
    ("path", "prefix"),
    [
        ("/v2/models/m/infer?x=1", "/v2/models/m"),
        ("/v2/models", "/v2/models"),
        ("/", "/"),
        ("", "/"),
        ("/v2/models/%6d/infer", "/v2/models/m"),  # keyed as routing will see it
        ("/v2//models/./m/infer", "/v2/models/m"),
    ],
)
def test_route_prefix(path: str, prefix: str) -> None:
    assert route_prefix(path) == prefix


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0, "burst": 1},
        {"rate": math.inf, "burst": 1},
        {"rate": 1, "burst": 0},
        {"rate": 1, "burst": 1, "key": ""},
        {"rate": 1, "burst": 1, "key": "peer"},
        {"rate": 1, "burst": 1, "key": "claim:"},
        {"rate": 1, "burst": 1, "key": "header:"},
        {"rate": 1, "burst": 1, "key": "header: x"},
        {"rate": 1, "burst": 1, "key": "client:x"},
        {"rate": 1, "burst": 1, "key": "route:/v2"},
    ],
)
def test_settings_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        RateLimitSettings(**kwargs)


def test_settings_accept_all_key_forms() -> None:
    for key in ("client", "route", "claim:sub", "header:x-api-key"):
        assert RateLimitSettings(rate=1.5, burst=3, key=key).key == key
