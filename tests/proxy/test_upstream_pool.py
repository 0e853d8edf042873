"""The upstream pool over real sockets: keep-alive reuse, no reuse after `Connection: close` or an unfinished
body, bounded idle connections, idle expiry, and the buffering rule of answers."""

from __future__ import annotations

import asyncio

import pytest

from proxy.dataplane.errors import UpstreamUnavailable
from proxy.telemetry.collectors import UpstreamPoolCollector
from proxy.upstream import UpstreamPool, UpstreamResponse, origin_of
from proxy.upstream.response import BUFFER_MAX
from tests.support.scripted import Scripted, answer, raw
from tests.support.wait import wait_until

CHUNKED_3 = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n"


def head(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


async def fetch(pool: UpstreamPool, url: str, path: str, method: str = "GET") -> UpstreamResponse:
    """One request through the pool; the answer once `ready`."""
    origin = origin_of(url)
    conn = pool.take(origin) or await pool.connect(origin)
    deadline = asyncio.get_running_loop().time() + 5.0
    resp = conn.send(head(path, method), b"", deadline, method == "HEAD")
    await resp.ready
    return resp


async def read_all(resp: UpstreamResponse) -> bytes:
    return b"".join([chunk async for chunk in resp])


async def settle() -> None:
    """Let close notifications travel (a few loop turns)."""
    for _ in range(5):
        await asyncio.sleep(0.01)


async def test_keep_alive_reuses_one_connection_for_sequential_requests() -> None:
    async with Scripted({"/ok": answer(b"hello")}) as up:
        pool = UpstreamPool()
        for _ in range(10):
            resp = await fetch(pool, up.url, "/ok")
            assert (resp.status, resp.streamed, resp.body()) == (200, False, b"hello")
        assert (up.connections, pool.connects, pool.idle_count()) == (1, 1, 1)
        assert (pool.reuses, pool.expired) == (9, 0)
        families = {f.name: f for f in UpstreamPoolCollector(pool).collect()}
        events = {s.labels["event"]: s.value for s in families["outrider_upstream_connections"].samples}
        assert events == {"opened": 1.0, "reused": 9.0, "expired": 0.0}
        assert families["outrider_upstream_connections_idle"].samples[0].value == 1.0
        await pool.close()


async def test_no_reuse_after_connection_close() -> None:
    async with Scripted({"/close": answer(b"bye", close=True)}) as up:
        pool = UpstreamPool()
        for _ in range(3):
            resp = await fetch(pool, up.url, "/close")
            assert resp.body() == b"bye"
        assert (up.connections, pool.connects, pool.idle_count()) == (3, 3, 0)
        await pool.close()


async def test_no_reuse_after_an_unfinished_body() -> None:
    async def unfinished(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\nsome of it")
        await asyncio.sleep(0.05)  # the subject: the rest never comes while the client reads
        return True

    async with Scripted({"/big": unfinished, "/ok": answer(b"ok")}) as up:
        pool = UpstreamPool()
        resp = await fetch(pool, up.url, "/big")
        assert resp.streamed
        await resp.aclose()  # the client went away before the end
        await settle()
        assert up.closed == 1  # the upstream saw its connection closed
        assert (await fetch(pool, up.url, "/ok")).body() == b"ok"
        assert up.connections == 2
        await pool.close()


async def test_a_streamed_body_read_to_its_end_leaves_the_connection_reusable() -> None:
    async with Scripted({"/chunked": raw(CHUNKED_3), "/ok": answer(b"ok")}) as up:
        pool = UpstreamPool()
        resp = await fetch(pool, up.url, "/chunked")
        assert await read_all(resp) == b"abc"
        assert (await fetch(pool, up.url, "/ok")).body() == b"ok"
        assert up.connections == 1
        await pool.close()


async def test_idle_connections_are_bounded_per_origin() -> None:
    async def slow(writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)  # all four are in flight at once
        return await answer(b"ok")(writer)

    async with Scripted({"/slow": slow}) as up:
        pool = UpstreamPool(max_idle=2)
        answers = await asyncio.gather(*(fetch(pool, up.url, "/slow") for _ in range(4)))
        assert [r.body() for r in answers] == [b"ok"] * 4
        await settle()
        assert up.connections == 4
        assert pool.idle_count(origin_of(up.url)) == 2
        assert up.closed == 2  # the two beyond the bound were closed
        assert pool.expired == 2
        await pool.close()
        await settle()
        assert up.closed == 4


async def test_idle_connections_expire() -> None:
    async with Scripted({"/ok": answer(b"ok")}) as up:
        pool = UpstreamPool(idle_s=0.1)
        await fetch(pool, up.url, "/ok")
        assert pool.idle_count() == 1
        await wait_until(lambda: pool.idle_count() == 0, 2.0)  # idle_s, then the sweeper's next pass
        assert pool.expired == 1
        await settle()
        assert up.closed == 1
        await fetch(pool, up.url, "/ok")
        assert up.connections == 2
        await pool.close()


async def test_a_short_keep_alive_timeout_of_the_upstream_is_respected() -> None:
    async with Scripted({"/ka": answer(b"ok", headers="Keep-Alive: timeout=1\r\n")}) as up:
        pool = UpstreamPool()
        await fetch(pool, up.url, "/ka")
        await fetch(pool, up.url, "/ka")
        assert up.connections == 2  # 1 s less the margin: never worth keeping
        await pool.close()


async def test_an_idle_connection_closed_by_the_upstream_is_dropped() -> None:
    async with Scripted({"/ok": answer(b"ok"), "/last": answer(b"x")}) as up:
        pool = UpstreamPool()
        await fetch(pool, up.url, "/ok")
        await up.__aexit__(None, None, None)  # the upstream goes away, closing its connections
        await settle()
        assert pool.idle_count() == 0
        await pool.close()


@pytest.mark.parametrize(
    ("route", "streamed", "body"),
    [
        (answer(b"small"), False, b"small"),
        (answer(b"y" * (BUFFER_MAX + 1)), True, b"y" * (BUFFER_MAX + 1)),
        (answer(b"data: 1\n\n", headers="Content-Type: text/event-stream\r\n"), True, b"data: 1\n\n"),
        (raw(CHUNKED_3), True, b"abc"),
        (
            raw(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", keep=False),
            True,
            b"until the end",
        ),
        (raw(b"HTTP/1.1 204 No Content\r\n\r\n"), False, b""),
        (raw(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), False, b"ok"),
        (raw(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"), False, b"ok"),
    ],
    ids=["small", "large", "event-stream", "chunked", "until-close", "204", "interim-100", "bare-lf"],
)
async def test_buffering_rule(route: object, streamed: bool, body: bytes) -> None:
    async with Scripted({"/x": route}) as up:  # type: ignore[dict-item]
        pool = UpstreamPool()
        resp = await fetch(pool, up.url, "/x")
        assert resp.streamed is streamed
        assert (await read_all(resp) if streamed else resp.body()) == body
        await pool.close()


async def test_head_answers_complete_without_a_body_and_are_not_reused() -> None:
    async with Scripted({"/h": raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")}) as up:
        pool = UpstreamPool()
        resp = await fetch(pool, up.url, "/h", method="HEAD")
        assert (resp.status, resp.streamed, resp.body(), resp.content_length) == (200, False, b"", 1000)
        await fetch(pool, up.url, "/h", method="HEAD")
        assert up.connections == 2
        await pool.close()


async def test_a_reset_mid_body_ends_the_stream_with_an_upstream_error() -> None:
    cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    async with Scripted({"/cut": raw(cut, keep=False)}) as up:
        pool = UpstreamPool()
        resp = await fetch(pool, up.url, "/cut")
        chunks: list[bytes] = []

        async def read() -> None:
            async for chunk in resp:
                chunks.append(chunk)

        with pytest.raises(UpstreamUnavailable) as caught:
            await read()
        assert chunks == [b"abc"]
        assert caught.value.error_class == "upstream_reset"
        await pool.close()


async def test_garbage_is_an_invalid_response() -> None:
    async with Scripted({"/g": raw(b"\x00\xffnot http at all\r\n\r\n")}) as up:
        pool = UpstreamPool()
        with pytest.raises(UpstreamUnavailable) as caught:
            await fetch(pool, up.url, "/g")
        assert caught.value.error_class == "invalid_response"
        await pool.close()
