"""Streams from the upstream pool and `Forward` over real sockets: backpressure, the route deadline
mid-stream, what the upstream receives (Host, bytes as sent); the SSE counter, the stream tap, and the mirror
pairing a streamed primary answer when it ends."""

from __future__ import annotations

import asyncio
import gzip
import time

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.dataplane.errors import UpstreamTimeout
from proxy.dataplane.exchange import Exchange, Inbound, Reply
from proxy.dataplane.stream_tap import CLOSED, COMPLETE, Outcome, SseCounter, TappedStream
from proxy.filters.forward import Forward
from proxy.filters.mirror import Mirror
from proxy.upstream import UpstreamPool
from proxy.upstream.response import HIGH_WATER
from shadow.dispatch import ShadowDispatcher
from shadow.pairing import Pair
from tests.proxy.test_upstream_pool import fetch
from tests.support.scripted import Scripted, answer
from tests.support.wait import wait_until

MIB = 1024 * 1024


def exchange(
    url: str, body: bytes = b"", headers: dict[str, str] | None = None, method: str = "POST"
) -> Exchange:
    inbound = Inbound(
        method,
        "/v2/models/m/infer",
        CIMultiDictProxy(CIMultiDict(headers or {})),
        body,
        "127.0.0.1",
        time.time(),
        time.monotonic(),
        "rid-1",
    )
    ex = Exchange(inbound)
    ex.upstream_url = url
    return ex


async def test_a_slow_consumer_pauses_reading_from_the_upstream() -> None:
    sent = {"bytes": 0}

    async def firehose(writer: asyncio.StreamWriter) -> bool:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {8 * MIB}\r\n\r\n".encode())
        for _ in range(128):
            writer.write(b"z" * (64 * 1024))
            await writer.drain()  # blocks once the proxy stops reading and the socket buffers are full
            sent["bytes"] += 64 * 1024
        return True

    async with Scripted({"/x": firehose}) as up:
        pool = UpstreamPool()
        resp = await fetch(pool, up.url, "/x")
        await wait_until(lambda: resp.buffered > HIGH_WATER, 5.0)  # past the mark: reading pauses
        await asyncio.sleep(0.3)  # the subject: the consumer takes nothing for a while; nothing more is read
        assert resp.buffered <= HIGH_WATER + 256 * 1024  # one read past the mark at most
        assert sent["bytes"] < 8 * MIB  # the upstream is held back, not read into memory
        total = 0
        async for chunk in resp:
            total += len(chunk)
        assert total == 8 * MIB
        await pool.close()


async def test_a_stream_outlives_the_route_deadline_and_is_cut_when_silent() -> None:
    async def trickle(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(100):
            writer.write(b"1\r\n.\r\n")
            await writer.drain()
            await asyncio.sleep(0.02 if i < 25 else 0.5)  # 0.5 s of chunks, then silences
        return True

    async with Scripted({"/v2/models/m/infer": trickle}) as up:
        pool = UpstreamPool()
        forward = Forward(pool, default_timeout_s=0.3)  # bounds the head of a stream, not its body
        forward.default_stream_idle_s = 0.15
        reply = await forward(exchange(up.url))
        assert reply.stream is not None
        stream, got = reply.stream, bytearray()

        async def read() -> None:
            async for chunk in stream:
                got.extend(chunk)

        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await read()
        assert len(got) == 26  # every chunk up to the first silence, past the 0.3 s route deadline
        assert 0.5 < time.monotonic() - started < 0.9
        await asyncio.wait_for(up.closed_event.wait(), 1.0)  # its next write finds the connection closed
        await pool.close()


async def test_the_upstream_gets_its_own_host_the_bytes_as_sent_and_no_expect() -> None:
    body = gzip.compress(b'{"inputs": []}')
    headers = {"Host": "client.example", "Content-Encoding": "gzip", "Expect": "100-continue"}
    async with Scripted({"/v2/models/m/infer": answer(b"ok")}) as up:
        pool = UpstreamPool()
        for preserve, host in ((False, f"127.0.0.1:{up.port}"), (True, "client.example")):
            reply = await Forward(pool, preserve_host=preserve)(exchange(up.url, body, headers))
            assert (reply.status, reply.body, reply.stream) == (200, b"ok", None)
            head, _, received = up.requests[-1].partition(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            assert lines[0] == "POST /v2/models/m/infer HTTP/1.1"
            assert f"Host: {host}" in lines
            assert "Content-Encoding: gzip" in lines
            assert f"Content-Length: {len(body)}" in lines
            assert not any(line.lower().startswith("expect:") for line in lines)
            assert received == body
        await pool.close()


async def test_a_streamed_reply_keeps_the_upstreams_length_and_records_timings() -> None:
    big = b"b" * (200 * 1024)

    async def in_two_parts(writer: asyncio.StreamWriter) -> bool:
        # the rest comes later: an answer already all here when the head is read would go whole
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(big)}\r\n\r\n".encode() + big[:1000])
        await asyncio.sleep(0.05)  # the subject: the rest of the answer comes later
        writer.write(big[1000:])
        return True

    async with Scripted({"/v2/models/m/infer": in_two_parts}) as up:
        pool = UpstreamPool()
        ex = exchange(up.url)
        reply = await Forward(pool)(ex)
        assert reply.stream is not None
        assert reply.headers["Content-Length"] == str(len(big))
        assert b"".join([c async for c in reply.stream]) == big
        assert ex.ttfb_ms is not None
        assert 0 < ex.ttfb_ms <= ex.upstream_ms
        await pool.close()


@pytest.mark.parametrize(
    ("pieces", "events"),
    [
        ([b"data: a\n\ndata: b\n\n"], 2),
        ([b"data: a\r\n\r\n", b"data: b\r", b"\n\r", b"\n"], 2),
        ([b"data: a\r\r", b"event: x\ndata: b\n", b"\n"], 2),
        ([b": keep-alive\n\n", b"data: a\n\n", b"\n\n"], 1),
        ([b"da", b"ta: a", b"\n", b"\n", b"data: incomplete\n"], 1),
    ],
    ids=["lf", "crlf-split", "cr-and-fields", "comments-and-extra-blank-lines", "split-lines"],
)
def test_sse_counter(pieces: list[bytes], events: int) -> None:
    counter = SseCounter()
    for piece in pieces:
        counter.feed(piece)
    assert counter.events == events


class ListStream:
    """A BodyStream over fixed chunks, then optionally an error."""

    def __init__(self, chunks: list[bytes], error: BaseException | None = None) -> None:
        self.chunks, self.error, self.closed = list(chunks), error, False

    def __aiter__(self) -> ListStream:
        return self

    async def __anext__(self) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.error is not None:
            raise self.error
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed = True


async def test_tapped_stream_reports_its_end_once_inside_out() -> None:
    order: list[str] = []
    ends: list[tuple[Outcome, int]] = []

    def inner_end(outcome: Outcome, sent: int) -> None:
        order.append("inner")

    def outer_end(outcome: Outcome, sent: int) -> None:
        order.append("outer")
        ends.append((outcome, sent))

    source = ListStream([b"ab", b"c"])
    stream = TappedStream(TappedStream(source, inner_end), outer_end)
    assert [c async for c in stream] == [b"ab", b"c"]
    await stream.aclose()
    assert (order, ends, source.closed) == (["inner", "outer"], [(COMPLETE, 3)], True)

    ends.clear()
    early = TappedStream(ListStream([b"a", b"b"]), outer_end)
    await early.__anext__()
    await early.aclose()
    assert ends == [(CLOSED, 1)]

    ends.clear()
    failing = TappedStream(ListStream([b"a"], UpstreamTimeout("late")), outer_end)
    with pytest.raises(UpstreamTimeout):
        async for _ in failing:
            pass
    assert isinstance(ends[0][0], UpstreamTimeout)
    assert ends[0][1] == 1


async def test_the_mirror_pairs_a_streamed_primary_when_it_ends() -> None:
    mirror = Mirror(ShadowDispatcher())
    whole = Pair(["shadow"], None)
    reply = Reply(200, CIMultiDict(), b"", stream=ListStream([b'{"a"', b": 1}"]))
    stream = mirror._paired(whole, reply)
    before = whole.primary_status
    assert before is None  # nothing known before the end
    assert [c async for c in stream] == [b'{"a"', b": 1}"]
    assert (whole.primary_status, whole.primary_answer.body) == (200, b'{"a": 1}')

    cut = Pair(["shadow"], None)
    reply = Reply(200, CIMultiDict(), b"", stream=ListStream([b"{"], UpstreamTimeout("late")))
    stream = mirror._paired(cut, reply)
    assert await stream.__anext__() == b"{"
    with pytest.raises(UpstreamTimeout):
        await stream.__anext__()
    assert (cut.primary_status, cut.primary_answer.body) == (
        0,
        b"",
    )  # an answer that did not end is not compared
