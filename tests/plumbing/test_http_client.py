"""`http_session` and `read_capped` against a real aiohttp server on 127.0.0.1: bodies at and over the cap
(said up front, or found while streaming), no cookies kept, the timeout, bytes left compressed on request."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from plumbing.http_client import TooLarge, http_session, read_capped

BODY = b"x" * 1000


async def fixed(_: web.Request) -> web.Response:
    return web.Response(body=BODY)


async def streamed(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()  # chunked: no Content-Length
    await resp.prepare(request)
    for _ in range(10):
        await resp.write(BODY[:100])
    await resp.write_eof()
    return resp


async def cookie(request: web.Request) -> web.Response:
    resp = web.Response(text=request.headers.get("Cookie", "none"))
    resp.set_cookie("session", "s3cret")
    return resp


async def slow(_: web.Request) -> web.Response:
    await asyncio.sleep(1.0)  # the subject: an answer later than the client's timeout
    return web.Response()


async def gzipped(_: web.Request) -> web.Response:
    return web.Response(body=gzip.compress(BODY), headers={"Content-Encoding": "gzip"})


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    for handler in (fixed, streamed, cookie, slow, gzipped):
        app.router.add_get(f"/{handler.__name__}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize("path", ["/fixed", "/streamed"])
async def test_a_body_at_the_cap_is_read_whole(base: str, path: str) -> None:
    async with http_session() as session, session.get(base + path) as resp:
        assert await read_capped(resp, len(BODY)) == BODY


@pytest.mark.parametrize(("path", "length"), [("/fixed", len(BODY)), ("/streamed", None)])
async def test_one_byte_over_the_cap_is_too_large(base: str, path: str, length: int | None) -> None:
    async with http_session() as session, session.get(base + path) as resp:
        with pytest.raises(TooLarge) as raised:
            await read_capped(resp, len(BODY) - 1)
    assert (raised.value.status, raised.value.cap, raised.value.length) == (200, 999, length)
    assert "over the cap of 999 bytes" in str(raised.value)


async def test_no_cookie_is_kept_between_calls(base: str) -> None:
    async with http_session() as session:
        for _ in range(2):
            async with session.get(base + "/cookie") as resp:
                assert await resp.text() == "none"


async def test_the_timeout_bounds_the_whole_call(base: str) -> None:
    async with http_session(timeout_s=0.1) as session:
        with pytest.raises(TimeoutError):
            async with session.get(base + "/slow") as resp:
                await resp.read()


async def test_answers_are_decompressed_unless_asked_not_to(base: str) -> None:
    async with http_session() as session, session.get(base + "/gzipped") as resp:
        assert await resp.read() == BODY
    async with http_session(decompress=False) as session, session.get(base + "/gzipped") as resp:
        assert gzip.decompress(await resp.read()) == BODY


async def test_the_pool_limit_and_skipped_headers_reach_the_session() -> None:
    async with http_session(limit=3, skip_auto_headers=("User-Agent",), timeout_s=None) as session:
        assert isinstance(session.connector, aiohttp.TCPConnector)
        assert session.connector.limit == 3
        assert "User-Agent" in session.skip_auto_headers
        assert session.timeout.total == 300  # aiohttp's own
