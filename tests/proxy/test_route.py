"""`route` in isolation: path normalisation, prefix matching, pins, unit keys, per-request draws, blue-green
and A/B tables."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from experiments.model import (
    ABStrategy,
    BlueGreenStrategy,
    CanaryStrategy,
    Experiment,
    Pin,
    Strategy,
    UnitKey,
    Variant,
)
from experiments.state import initial_state, transition
from proxy.control.router import Router, prefix_matches
from proxy.dataplane.errors import BadPath, NotFound, PayloadTooLarge
from proxy.dataplane.exchange import Exchange, Inbound, Reply
from proxy.filters.route import Route

STABLE = Variant("stable", "stable", "http://127.0.0.1:1")
CAND = Variant("candidate", "candidate", "http://127.0.0.1:2")
USER_HEADER = UnitKey("header", "x-user-id")


def experiment(strategy: Strategy, unit: UnitKey = USER_HEADER, **kw: object) -> Experiment:
    return Experiment(
        name="e",
        source="t",
        path_prefix="/v2/models/m",
        variants=(STABLE, CAND),
        unit=unit,
        salt="s",
        strategy=strategy,
        **kw,  # type: ignore[arg-type]
    )


def exchange(
    path: str = "/v2/models/m/infer", body: bytes = b"{}", headers: dict[str, str] | None = None
) -> Exchange:
    inbound = Inbound(
        "POST",
        path,
        CIMultiDictProxy(CIMultiDict(headers or {})),
        body,
        "127.0.0.1",
        time.time(),
        time.monotonic(),
        "r",
    )
    return Exchange(inbound)


async def terminal(ex: Exchange) -> Reply:
    return Reply(200, CIMultiDict(), b"")


async def routed(route: Route, ex: Exchange) -> Exchange:
    await route(ex, terminal)
    return ex


@pytest.mark.parametrize(
    ("prefix", "path", "expected"),
    [
        ("/v2/models/m", "/v2/models/m", True),
        ("/v2/models/m", "/v2/models/m/infer", True),
        ("/v2/models/m", "/v2/models/mx", False),
        ("/v2/", "/v2/anything", True),
        ("/", "/x", True),
        ("/v2/models/m", "/v2/models", False),
    ],
)
def test_prefix_matches_whole_segments(prefix: str, path: str, expected: bool) -> None:
    assert prefix_matches(prefix, path) is expected


async def test_pins_win_over_the_bucket() -> None:
    exp = experiment(CanaryStrategy((1.0,)), pins=(Pin("x-qa", "yes", "candidate"),))
    route = Route(Router([exp]), None)
    ex = await routed(route, exchange(headers={"x-user-id": "u1", "x-qa": "yes"}))
    assert ex.assignment is not None
    assert ex.assignment.variant == CAND
    assert ex.assignment.pinned
    assert ex.assignment.p_variant == 1.0


async def test_missing_unit_key_draws_per_request() -> None:
    route = Route(Router([experiment(CanaryStrategy((50.0,)))]), None, rng=random.Random(1))
    seen: Counter[str] = Counter()
    for _ in range(400):
        ex = await routed(route, exchange())
        assert ex.assignment is not None
        assert ex.assignment.unit is None
        seen[ex.assignment.variant.name] += 1
    assert 150 < seen["candidate"] < 250


async def test_claim_unit_key_reads_the_principal() -> None:
    route = Route(Router([experiment(CanaryStrategy((50.0,)), unit=UnitKey("claim", "sub"))]), None)
    first = exchange()
    first.principal = {"sub": "alice"}
    second = exchange()
    second.principal = {"sub": "alice"}
    a, b = await routed(route, first), await routed(route, second)
    assert a.assignment is not None
    assert b.assignment is not None
    assert a.assignment.bucket == b.assignment.bucket
    assert a.assignment.unit == b.assignment.unit is not None


async def test_blue_green_is_all_or_nothing_and_rolls_back_at_once() -> None:
    exp = experiment(BlueGreenStrategy("stable"))
    router = Router([exp])
    route = Route(router, None)
    users = [f"u{i}" for i in range(200)]

    async def variants() -> set[str]:
        out = set()
        for user in users:
            ex = await routed(route, exchange(headers={"x-user-id": user}))
            assert ex.assignment is not None
            out.add(ex.assignment.variant.name)
        return out

    assert await variants() == {"stable"}
    state = initial_state(exp)
    switched = transition(exp, state, "promoted", 0, 1.0, "switch")
    assert router.apply(switched)
    assert await variants() == {"candidate"}
    assert router.apply(transition(exp, switched, "rolled_back", 0, 2.0, "rollback"))
    assert await variants() == {"stable"}
    assert not router.apply(switched)  # an older version never wins


async def test_ab_weights_are_respected() -> None:
    route = Route(Router([experiment(ABStrategy({"stable": 30.0, "candidate": 70.0}))]), None)
    seen: Counter[str] = Counter()
    for i in range(3000):
        ex = await routed(route, exchange(headers={"x-user-id": f"user-{i}"}))
        assert ex.assignment is not None
        seen[ex.assignment.variant.name] += 1
        assert ex.assignment.p_variant == (0.7 if ex.assignment.variant == CAND else 0.3)
    assert 0.66 < seen["candidate"] / 3000 < 0.74


async def test_unmatched_is_404_or_default() -> None:
    router = Router([experiment(CanaryStrategy((10.0,)))])
    with pytest.raises(NotFound):
        await routed(Route(router, None), exchange("/elsewhere"))
    ex = await routed(Route(router, "http://127.0.0.1:9/"), exchange("/elsewhere"))
    assert ex.upstream_url == "http://127.0.0.1:9"
    assert ex.assignment is None


async def test_route_body_cap() -> None:
    route = Route(Router([experiment(CanaryStrategy((10.0,)), max_body_bytes=10)]), None)
    with pytest.raises(PayloadTooLarge):
        await routed(route, exchange(body=b"x" * 11))


async def test_the_request_continues_with_its_normalised_path() -> None:
    route = Route(Router([experiment(CanaryStrategy((10.0,)))]), None)
    ex = await routed(route, exchange("/v2/models/m/x/..//%69nfer?q=%2e%2e/.."))
    assert ex.inbound.path == "/v2/models/m/infer?q=%2e%2e/.."
    assert ex.assignment is not None


async def test_routing_is_on_the_normalised_path() -> None:
    other = Experiment(
        name="other",
        source="t",
        path_prefix="/v2/models/other",
        variants=(STABLE, CAND),
        unit=USER_HEADER,
        salt="s",
        strategy=CanaryStrategy((10.0,)),
    )
    route = Route(Router([experiment(CanaryStrategy((10.0,))), other]), None)
    ex = await routed(route, exchange("/v2/models/x/../other/infer"))  # the raw path matches no experiment
    assert ex.assignment is not None
    assert ex.assignment.experiment.name == "other"
    with pytest.raises(BadPath, match="leaves '/v2/models/m'"):
        await routed(route, exchange("/v2/models/m/../other/infer"))  # out of the prefix it claimed


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/m/../../../admin",
        "/v2/models/m/%2e%2e/%2E%2E/admin",
        "/v2/models/m/x%2F..%2F..%2F..%2Fadmin",
        "/v2/models/m/..",
        "/v2/models/m/infer/../../mx/infer",
    ],
)
async def test_a_path_leaving_its_prefix_is_refused_before_the_chain_goes_on(path: str) -> None:
    reached = []

    async def never(ex: Exchange) -> Reply:
        reached.append(ex)
        return Reply(200, CIMultiDict(), b"")

    for default in (None, "http://127.0.0.1:9"):
        route = Route(Router([experiment(CanaryStrategy((10.0,)))]), default)
        ex = exchange(path)
        with pytest.raises(BadPath):
            await route(ex, never)
        assert ex.assignment is None
        assert ex.upstream_url is None
    assert reached == []


async def test_unmatched_paths_are_normalised_too() -> None:
    router = Router([experiment(CanaryStrategy((10.0,)))])
    ex = await routed(Route(router, "http://127.0.0.1:9"), exchange("/a/./b//c"))
    assert ex.inbound.path == "/a/b/c"
    with pytest.raises(BadPath):
        await routed(Route(router, "http://127.0.0.1:9"), exchange("/a/%00"))
