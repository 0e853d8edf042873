"""Connections of the native data plane: header deadlines (silent, trickled, re-armed per keep-alive request),
keep-alive idling, pipelining in order, the connection caps (total, per client, per client behind a trusted
proxy), header limits, and the drain on shutdown."""

from __future__ import annotations

import asyncio

from multidict import CIMultiDict

from proxy.dataplane.exchange import Exchange, Reply
from proxy.runtime import loop
from tests.dataplane.harness import (
    REQUEST,
    SLACK,
    TIMEOUT,
    Served,
    closed_within,
    connect,
    response,
    run,
    serving,
    until,
)
from tests.integration.test_slowloris import trickle

PARTIAL = b"GET /x HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * 200


async def answered(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A keep-alive connection that has had one request answered."""
    reader, writer = await connect(address)
    writer.write(REQUEST)
    assert (await response(reader))[::2] == (200, b"0")
    return reader, writer


def test_a_silent_connection_gets_408_and_is_closed_at_the_header_timeout() -> None:
    async def scenario(s: Served) -> None:
        got = await trickle(s.address, b"", b"", 0.1, 3.0)
        assert got.closed_after is not None
        assert abs(got.closed_after - TIMEOUT) <= SLACK
        assert got.data.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert b'"code":"request_timeout"' in got.data
        assert s.sample("outrider_slow_clients_closed_total", phase="header") == 1

    run(scenario)


def test_a_trickled_header_block_is_closed_at_its_deadline_and_forgotten() -> None:
    async def scenario(s: Served) -> None:
        got = await trickle(s.address, b"", PARTIAL, 0.05, 3.0)  # a byte every 50 ms never completes
        assert got.closed_after is not None
        assert abs(got.closed_after - TIMEOUT) <= SLACK
        assert await until(lambda: s.sample("outrider_connections_open") == 0)
        assert not s.plane.connections
        assert s.plane.admission.clients.held == {}

    run(scenario)


def test_keep_alive_idles_past_the_header_timeout_and_each_request_re_arms_it() -> None:
    async def scenario(s: Served) -> None:
        reader, writer = await answered(s.address)
        await asyncio.sleep(TIMEOUT * 2)  # idle: keep-alive's business, not the header deadline's
        writer.write(REQUEST)
        assert (await response(reader))[0] == 200
        await asyncio.sleep(TIMEOUT * 2)  # the subject: idle again, past the header timeout
        start = asyncio.get_running_loop().time()
        writer.write(PARTIAL[:10])  # the next request starts: its deadline counts from this byte
        assert await closed_within(reader, TIMEOUT + SLACK)
        assert asyncio.get_running_loop().time() - start >= TIMEOUT - SLACK
        writer.close()

    run(scenario)


def test_an_idle_keep_alive_connection_is_closed_after_keepalive() -> None:
    async def scenario(s: Served) -> None:
        reader, writer = await answered(s.address)
        assert not await closed_within(reader, 1.0 - SLACK)
        assert await closed_within(reader, 2 * SLACK)
        assert s.sample("outrider_slow_clients_closed_total", phase="header") == 0
        writer.close()

    run(scenario, keepalive_s=1.0)


def test_each_request_moves_the_keep_alive_deadline_though_its_timer_is_kept() -> None:
    # The timer is lazy: armed once, it fires at the first deadline and must find a later one, not close.
    async def scenario(s: Served) -> None:
        reader, writer = await answered(s.address)
        for _ in range(4):  # 4 × 0.6 s: well past the first request's keep-alive deadline (1 s)
            assert not await closed_within(reader, 0.6)  # idle, under the keep-alive
            writer.write(REQUEST)
            assert (await response(reader))[0] == 200
        assert not await closed_within(reader, 1.0 - SLACK)
        assert await closed_within(reader, 2 * SLACK)  # and the last deadline still closes it
        writer.close()

    run(scenario, keepalive_s=1.0)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def slow_first(ex: Exchange) -> Reply:
        if ex.inbound.path == "/slow":
            await asyncio.sleep(0.2)  # the subject: the first answer is the slowest
        return Reply(200, CIMultiDict(), f"{ex.inbound.path}:{len(ex.inbound.body)}".encode())

    async def scenario(s: Served) -> None:
        reader, writer = await connect(s.address)
        post = b"POST /post HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
        writer.write(REQUEST.replace(b"/x", b"/slow") + post + REQUEST)
        bodies = [(await response(reader))[2] for _ in range(3)]
        assert bodies == [b"/slow:0", b"/post:3", b"/x:0"]
        writer.close()

    async def main() -> None:
        async with serving(slow_first) as s:
            await scenario(s)

    loop.run(main())


def test_connections_beyond_the_cap_are_reset_at_once_and_counted() -> None:
    async def scenario(s: Served) -> None:
        held = [await answered(s.address) for _ in range(2)]
        refused, writer = await connect(s.address)
        assert await closed_within(refused, 0.2)
        writer.close()
        assert s.sample("outrider_connections_refused_total") == 1
        assert s.sample("outrider_connections_open") == 2
        held[0][1].close()
        assert await until(lambda: s.sample("outrider_connections_open") == 1)
        _, writer = await answered(s.address)
        for w in (writer, held[1][1]):
            w.close()
            await w.wait_closed()

    run(scenario, max_connections=2)


def test_one_address_cannot_take_every_connection() -> None:
    async def scenario(s: Served) -> None:
        held = [await answered(s.address) for _ in range(3)]
        refused, writer = await connect(s.address)  # the 4th from 127.0.0.1: over its share, not the cap
        assert await closed_within(refused, 0.2)
        writer.close()
        assert s.sample("outrider_client_connections_refused_total") == 1
        assert s.sample("outrider_connections_refused_total") == 0
        held[0][1].close()
        assert await until(lambda: s.plane.admission.clients.held.get("127.0.0.1") == 2)
        _, writer = await answered(s.address)  # its slot came back
        for w in (writer, held[1][1], held[2][1]):
            w.close()

    run(scenario, max_connections=10, max_connections_per_client=3)


def test_behind_a_trusted_proxy_each_client_counts_its_requests_in_flight() -> None:
    gate = asyncio.Event()

    async def waiting(ex: Exchange) -> Reply:
        await gate.wait()
        return Reply(200, CIMultiDict(), b"ok")

    async def scenario(s: Served) -> None:
        def request(client: str) -> bytes:
            return b"GET /x HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: %s\r\n\r\n" % client.encode()

        conns = [await connect(s.address) for _ in range(4)]  # the proxy's: never refused themselves
        for (_, writer), client in zip(
            conns, ["203.0.113.7", "203.0.113.7", "203.0.113.7", "198.51.100.1"], strict=True
        ):
            writer.write(request(client))
        status, headers, body = await response(conns[2][0])  # the same client's third request in flight
        assert status == 429
        assert b'"code":"too_many_connections"' in body
        assert "connection" not in headers  # the proxy's connection stays usable
        gate.set()
        assert [(await response(r))[0] for r, _ in (conns[0], conns[1], conns[3])] == [200, 200, 200]
        assert s.plane.admission.clients.held == {}
        for _, writer in conns:
            writer.close()

    async def main() -> None:
        async with serving(waiting, trusted=["127.0.0.0/8"], max_connections_per_client=2) as s:
            await scenario(s)

    loop.run(main())


def test_header_limits_are_refused_and_the_connection_closed() -> None:
    too_many = b"GET /x HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n"
    exactly = b"GET /x HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(99)) + b"\r\n"
    long_line = b"GET /x HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n"
    long_target = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    endless = b"GET /x HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 1_000_000  # one line that never ends

    async def status_and_closed(address: str, payload: bytes) -> tuple[int, bool]:
        reader, writer = await connect(address)
        writer.write(payload)
        status = (await response(reader))[0]
        closed = await closed_within(reader, 2.0)
        writer.close()
        return status, closed

    async def scenario(s: Served) -> None:
        assert await status_and_closed(s.address, too_many) == (431, True)
        assert await status_and_closed(s.address, long_line) == (431, True)
        assert await status_and_closed(s.address, long_target) == (400, True)
        assert await status_and_closed(s.address, endless) == (431, True)
        reader, writer = await connect(s.address)
        writer.write(exactly)  # 100 headers with Host: allowed
        assert (await response(reader))[0] == 200
        writer.close()
        assert s.seen
        assert len(s.seen) == 1

    run(scenario)


def test_shutdown_closes_idle_connections_and_lets_requests_in_flight_finish() -> None:
    handling = asyncio.Event()

    async def slow(ex: Exchange) -> Reply:
        handling.set()
        await asyncio.sleep(0.3)  # the subject: a request still in flight at shutdown
        return Reply(200, CIMultiDict(), b"done")

    async def main() -> None:
        async with serving(slow) as s:
            idle_reader, idle_writer = await connect(s.address)
            busy_reader, busy_writer = await connect(s.address)
            busy_writer.write(REQUEST)
            await asyncio.wait_for(handling.wait(), 5.0)
            await s.plane.shutdown(timeout=2.0)
            status, headers, body = await response(busy_reader)
            assert (status, body, headers.get("connection")) == (200, b"done", "close")
            assert await closed_within(busy_reader, 1.0)
            assert await closed_within(idle_reader, 0.1)
            for w in (idle_writer, busy_writer):
                w.close()

    loop.run(main())


def test_shutdown_cancels_what_outlives_the_drain_timeout() -> None:
    handling = asyncio.Event()

    async def hang(ex: Exchange) -> Reply:
        handling.set()
        await asyncio.sleep(30)  # the subject: a handler that outlives any drain timeout
        return Reply(200, CIMultiDict(), b"never")

    async def main() -> None:
        async with serving(hang) as s:
            reader, writer = await connect(s.address)
            writer.write(REQUEST)
            await asyncio.wait_for(handling.wait(), 5.0)
            started = asyncio.get_running_loop().time()
            await s.plane.shutdown(timeout=0.3)
            assert asyncio.get_running_loop().time() - started < 1.0
            assert len(s.plane.tasks) == 0
            assert await closed_within(reader, 1.0)
            writer.close()

    loop.run(main())
