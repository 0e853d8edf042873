"""`Forward` retries over real sockets: a refused connect is retried once within the budget; a reset or a
timeout after sending never is. A resolver picks which 127.0.0.1 port each connect goes to."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.dataplane.errors import UpstreamTimeout, UpstreamUnavailable
from proxy.dataplane.exchange import Exchange, Inbound
from proxy.filters.forward import Forward
from proxy.upstream import UpstreamPool
from proxy.upstream.retry_budget import RetryBudgets


class PortResolver:
    """Every lookup answers 127.0.0.1 and the next port of `ports` (the last one repeats)."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.lookups = 0

    async def resolve(self, host: str, port: int) -> tuple[str, int]:
        port = self.ports[min(self.lookups, len(self.ports) - 1)]
        self.lookups += 1
        return "127.0.0.1", port


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Upstream:
    """A real aiohttp upstream counting the requests it received."""

    def __init__(self) -> None:
        self.hits = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if request.path == "/reset":
            assert request.transport is not None
            request.transport.abort()
        if request.path in ("/reset", "/sleep"):
            await asyncio.sleep(5)  # the subject: an upstream that does not answer in time
        if request.path == "/nap":
            await asyncio.sleep(0.3)  # the subject: an answer late, but within the route timeout
        return web.Response(text="ok")


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", up.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    up.port = int(runner.addresses[0][1])
    yield up
    await runner.cleanup()


async def forward_via(
    ports: list[int], budgets: RetryBudgets, path: str = "/ok", timeout: float = 5.0
) -> Any:
    """(reply or error, the Forward, resolver lookups) for one request."""
    resolver = PortResolver(ports)
    pool = UpstreamPool(resolver=resolver.resolve)
    forward = Forward(pool, default_timeout_s=timeout, budgets=budgets)
    inbound = Inbound(
        "POST", path, CIMultiDictProxy(CIMultiDict()), b"{}", "127.0.0.1", time.time(), 0.0, "r"
    )
    ex = Exchange(inbound)
    ex.upstream_url = "http://upstream.test"
    try:
        result: Any = await forward(ex)
    except (UpstreamUnavailable, UpstreamTimeout) as err:
        result = err
    finally:
        await pool.close()
    return result, forward, resolver.lookups


async def test_refused_then_up_is_recovered_by_one_retry(upstream: Upstream) -> None:
    reply, forward, lookups = await forward_via([closed_port(), upstream.port], RetryBudgets())
    assert reply.status == 200
    assert reply.body == b"ok"
    assert (lookups, upstream.hits) == (2, 1)
    assert forward.retries == {"recovered": 1, "failed": 0, "budget_exhausted": 0}


async def test_refused_twice_is_a_fast_502() -> None:
    started = time.monotonic()
    err, forward, lookups = await forward_via([closed_port()], RetryBudgets())
    assert time.monotonic() - started < 0.5
    assert isinstance(err, UpstreamUnavailable)
    assert (err.status, err.error_class) == (502, "connect_error")
    assert lookups == 2
    assert forward.retries == {"recovered": 0, "failed": 1, "budget_exhausted": 0}


async def test_no_retry_once_the_budget_is_spent(upstream: Upstream) -> None:
    err, forward, lookups = await forward_via([closed_port(), upstream.port], RetryBudgets(0.0, 0))
    assert isinstance(err, UpstreamUnavailable)
    assert (lookups, upstream.hits) == (1, 0)
    assert forward.retries == {"recovered": 0, "failed": 0, "budget_exhausted": 1}


async def test_a_reset_after_sending_is_never_retried(upstream: Upstream) -> None:
    err, forward, lookups = await forward_via([upstream.port], RetryBudgets(), path="/reset")
    assert isinstance(err, UpstreamUnavailable)
    assert err.error_class == "upstream_reset"
    assert (lookups, upstream.hits) == (1, 1)
    assert forward.retries == {"recovered": 0, "failed": 0, "budget_exhausted": 0}


async def test_a_timeout_after_sending_is_never_retried(upstream: Upstream) -> None:
    err, forward, lookups = await forward_via([upstream.port], RetryBudgets(), path="/sleep", timeout=0.3)
    assert isinstance(err, UpstreamTimeout)
    assert (lookups, upstream.hits) == (1, 1)
    assert forward.retries == {"recovered": 0, "failed": 0, "budget_exhausted": 0}


async def test_each_upstream_earns_its_own_budget(upstream: Upstream) -> None:
    budgets = RetryBudgets(0.2, 1)
    for _ in range(3):
        reply, _, _ = await forward_via([upstream.port], budgets)
        assert reply.status == 200
    budget = budgets.of("http://upstream.test")
    assert (budget.requests_in_window, budget.retries_in_window) == (3, 0)
    assert budgets.of("http://other.test").requests_in_window == 0
    assert budgets.of("http://other.test").try_retry()  # its own minimum, untouched by the traffic above
    assert not budgets.of("http://other.test").try_retry()


async def test_each_answer_on_a_kept_connection_has_its_own_deadline(upstream: Upstream) -> None:
    # The connection's watchdog is lazy: armed for the first answer, it fires at that answer's deadline and
    # must find the later ones' deadlines (not time out an answer on time), and still catch a late one.
    resolver = PortResolver([upstream.port])
    pool = UpstreamPool(resolver=resolver.resolve)
    forward = Forward(pool, default_timeout_s=0.5, budgets=RetryBudgets())

    async def call(path: str) -> Any:
        ex = Exchange(Inbound("GET", path, CIMultiDictProxy(CIMultiDict()), b"", None, time.time(), 0.0, "r"))
        ex.upstream_url = "http://upstream.test"
        try:
            return await forward(ex)
        except UpstreamTimeout as err:
            return err

    try:
        for _ in range(4):  # 4 × 0.3 s on one connection: past the first answer's deadline
            reply = await call("/nap")
            assert reply.status == 200
        start = time.monotonic()
        late = await call("/sleep")
        assert isinstance(late, UpstreamTimeout)
        assert 0.4 <= time.monotonic() - start < 2.0
        assert resolver.lookups == 1  # the same connection throughout (the late one's was closed)
    finally:
        await pool.close()
