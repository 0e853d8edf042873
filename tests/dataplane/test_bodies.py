"""Request bodies on the native data plane: read only after the head filters, the three paces (average,
window, absolute), the global budget of body bytes in memory, caps known before reading, 100-continue,
chunked bodies."""

from __future__ import annotations

import asyncio

from multidict import CIMultiDict

from proxy.dataplane.chain import Stage
from proxy.dataplane.errors import Unauthorized
from proxy.dataplane.exchange import Exchange, Reply
from proxy.runtime import loop
from tests.dataplane.harness import Served, closed_within, connect, response, run, serving, until
from tests.integration.test_slowloris import trickle

HEAD = b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"


class RequireAuth:
    """A head filter: no Authorization, no entry (as proxy.filters.auth, before the body stage)."""

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        if "Authorization" not in ex.inbound.headers:
            raise Unauthorized("missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        return await call_next(ex)


def test_a_body_under_the_minimum_rate_gets_408_and_the_connection_closes_at_once() -> None:
    async def scenario(s: Served) -> None:
        # 10 bytes every 0.1 s = 100 B/s: due by 0.5 s of grace + received/1024 ≈ 0.55 s
        slow = await trickle(s.address, HEAD % 1000, b"x" * 1000, 0.1, 3.0, chunk=10)
        assert slow.data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b'"code":"request_timeout"' in slow.data
        assert slow.closed_after is not None
        assert abs(slow.closed_after - 0.55) <= 0.3
        assert s.sample("outrider_slow_clients_closed_total", phase="body") == 1
        # 100 bytes every 20 ms = 5 KB/s for 1 s, twice the grace: fast enough all the way
        reader, writer = await connect(s.address)
        writer.write(HEAD % 5000)
        for _ in range(50):
            writer.write(b"y" * 100)
            await asyncio.sleep(0.02)
        assert (await response(reader))[::2] == (200, b"5000")
        writer.close()
        assert await until(lambda: s.plane.admission.body.held == 0)

    run(scenario)


def test_a_burst_then_a_trickle_is_cut_after_one_window_not_after_its_average() -> None:
    async def scenario(s: Served) -> None:
        # 200 KiB at once, then 20 B/s: the running average would allow ~200 s; the 1 s window does not
        burst = HEAD % 400_000 + b"b" * 200_000
        got = await trickle(s.address, burst, b"t" * 1000, 0.5, 5.0, chunk=10)
        assert got.data.startswith(b"HTTP/1.1 408 "), got.data[:80]
        assert b"over 1 s" in got.data
        assert got.closed_after is not None
        assert 1.0 <= got.closed_after <= 2.2
        assert await until(lambda: s.plane.admission.body.held == 0)

    run(scenario, body_rate_window_s=1.0)


def test_a_body_must_be_complete_within_the_body_timeout_however_steady() -> None:
    async def scenario(s: Served) -> None:
        # 4 KB/s, above every rate, but 100 KB would take 25 s
        got = await trickle(s.address, HEAD % 100_000, b"s" * 100_000, 0.05, 5.0, chunk=200)
        assert got.data.startswith(b"HTTP/1.1 408 "), got.data[:80]
        assert b"not complete within 1 s" in got.data
        assert got.closed_after is not None
        assert 0.9 <= got.closed_after <= 1.6

    run(scenario, body_timeout_s=1.0)


def test_bodies_in_memory_are_capped_across_connections_and_beyond_it_503() -> None:
    async def scenario(s: Served) -> None:
        first, first_w = await connect(s.address)
        first_w.write(HEAD % 300_000 + b"1" * 200_000)  # held: 200 KB of the 350 KB budget
        assert await until(lambda: s.plane.admission.body.held >= 200_000)
        second, second_w = await connect(s.address)
        second_w.write(HEAD % 300_000 + b"2" * 200_000)
        status, headers, body = await response(second)
        assert status == 503
        assert b'"code":"overloaded"' in body
        assert headers["connection"] == "close"
        assert await closed_within(second, 2.0)
        assert s.sample("outrider_body_buffer_refused_total") == 1
        assert s.plane.admission.body.held <= 350_000
        first_w.write(b"1" * 100_000)  # the first completes: its bytes are given back after its answer
        assert (await response(first))[::2] == (200, b"300000")
        assert await until(lambda: s.plane.admission.body.held == 0)
        for w in (first_w, second_w):
            w.close()

    run(scenario, max_buffered_body_bytes=350_000, body_timeout_s=10.0)


def test_a_refused_request_gets_its_answer_before_its_body_is_read() -> None:
    async def scenario(s: Served) -> None:
        reader, writer = await connect(s.address)
        writer.write(HEAD % (10 * 1024 * 1024) + b"x" * 1024)  # 10 MiB announced, 1 KiB sent
        status, headers, _body = await response(reader)  # answered while the client holds the rest
        assert status == 401
        assert headers["www-authenticate"] == "Bearer"
        assert headers["connection"] == "close"
        assert await closed_within(reader, 2.0)
        writer.close()
        assert s.seen == []
        assert s.plane.admission.body.held == 0

    run(scenario, head_filters=[RequireAuth()])


def test_a_content_length_over_the_cap_is_refused_without_reading() -> None:
    async def scenario(s: Served) -> None:
        reader, writer = await connect(s.address)
        writer.write(HEAD % 2_000_000)
        status, headers, body = await response(reader)
        assert status == 413
        assert b'"code":"payload_too_large"' in body
        assert headers["connection"] == "close"
        writer.close()

    run(scenario, max_body_bytes=1_000_000)


def test_100_continue_is_sent_only_when_the_body_is_wanted() -> None:
    expect = b"POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n%s\r\n"

    async def scenario(s: Served) -> None:
        reader, writer = await connect(s.address)
        writer.write(expect % b"Authorization: Bearer x\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        assert (await response(reader))[::2] == (200, b"5")
        writer.write(expect % b"")  # refused on its headers: a final answer, no 100
        status, _, _ = await response(reader)
        assert status == 401
        writer.close()

    run(scenario, head_filters=[RequireAuth()])


def test_chunked_bodies_are_read_and_trailers_are_not_forwarded() -> None:
    chunked = (
        b"POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n4\r\ndefg\r\n0\r\nX-Trailer: t\r\n\r\n"
    )

    async def echo(ex: Exchange) -> Reply:
        return Reply(200, CIMultiDict(), ex.inbound.body + b"|" + ",".join(ex.inbound.headers).encode())

    async def main() -> None:
        async with serving(echo) as s:
            reader, writer = await connect(s.address)
            writer.write(chunked + chunked)
            for _ in range(2):
                assert (await response(reader))[2] == b"abcdefg|Host"
            writer.close()

    loop.run(main())


def test_a_client_gone_mid_body_frees_its_bytes() -> None:
    async def scenario(s: Served) -> None:
        _reader, writer = await connect(s.address)
        writer.write(HEAD % 500_000 + b"z" * 100_000)
        assert await until(lambda: s.plane.admission.body.held >= 100_000)
        writer.close()
        assert await until(lambda: s.plane.admission.body.held == 0)
        assert await until(lambda: s.sample("outrider_connections_open") == 0)

    run(scenario)
