"""Answers of the native data plane: fixed bodies, streamed bodies (chunked, with a Content-Length,
close-delimited on HTTP/1.0), HEAD, flow control towards a client that does not read, the stream closed when
the client goes away or breaks off, and the edge's headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from multidict import CIMultiDict

from proxy.dataplane.chain import Stage
from proxy.dataplane.errors import UpstreamUnavailable
from proxy.dataplane.exchange import Exchange, Reply
from proxy.feedback.token import HEADER as FEEDBACK_TOKEN
from proxy.runtime import loop
from tests.dataplane.harness import REQUEST, closed_within, connect, response, serving, until


class Chunks:
    """A BodyStream of `count` chunks of `size` bytes; counts what was pulled and whether it was closed."""

    def __init__(self, count: int, size: int, fail_after: int | None = None, pause: float = 0.0) -> None:
        self.count, self.size, self.fail_after, self.pause = count, size, fail_after, pause
        self.pulled = 0
        self.closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        for i in range(self.count):
            if self.fail_after is not None and i == self.fail_after:
                raise UpstreamUnavailable("upstream reset mid-body")
            if self.pause:
                await asyncio.sleep(self.pause)
            self.pulled += 1
            yield bytes([65 + i % 26]) * self.size

    async def aclose(self) -> None:
        self.closed = True


def streaming(stream: Chunks, length: int | None = None) -> Stage:
    async def terminal(ex: Exchange) -> Reply:
        headers = CIMultiDict({"Content-Type": "application/octet-stream"})
        if length is not None:
            headers["Content-Length"] = str(length)
        return Reply(200, headers, b"", stream=stream)

    return terminal


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return body
        body += (await reader.readexactly(size + 2))[:-2]


async def head_of(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
    return int(lines[0].split()[1]), headers


def test_a_stream_is_chunked_on_http11_and_the_connection_stays_usable() -> None:
    stream = Chunks(5, 1000)

    async def main() -> None:
        async with serving(streaming(stream)) as s:
            reader, writer = await connect(s.address)
            writer.write(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers = await head_of(reader)
            assert (status, headers["transfer-encoding"]) == (200, "chunked")
            assert "content-length" not in headers
            assert await read_chunked(reader) == b"".join(bytes([65 + i]) * 1000 for i in range(5))
            assert stream.closed
            writer.write(REQUEST)  # keep-alive after a streamed answer
            assert (await head_of(reader))[0] == 200
            writer.close()

    loop.run(main())


def test_a_stream_with_a_content_length_is_sent_as_is_and_on_http10_close_delimited() -> None:
    async def main() -> None:
        async with serving(streaming(Chunks(4, 250), length=1000)) as s:
            reader, writer = await connect(s.address)
            writer.write(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
            _, headers = await head_of(reader)
            assert headers["content-length"] == "1000"
            assert "transfer-encoding" not in headers
            assert len(await reader.readexactly(1000)) == 1000
            writer.close()
        async with serving(streaming(Chunks(3, 100))) as s:
            reader, writer = await connect(s.address)
            writer.write(b"GET /s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            _status, headers = await head_of(reader)
            assert "content-length" not in headers
            assert "transfer-encoding" not in headers
            assert len(await asyncio.wait_for(reader.read(), 5)) == 300  # ends with the connection
            writer.close()

    loop.run(main())


def test_head_answers_have_no_body_and_close_the_stream() -> None:
    stream = Chunks(3, 100)

    async def main() -> None:
        async with serving(streaming(stream, length=300)) as s:
            reader, writer = await connect(s.address)
            writer.write(b"HEAD /s HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
            for _ in range(2):  # the second answer follows the first at once: no body between
                status, headers = await head_of(reader)
                assert (status, headers["content-length"]) == (200, "300")
            assert stream.closed
            assert stream.pulled == 0
            writer.close()

    loop.run(main())


def test_a_client_that_does_not_read_stops_the_stream_and_one_that_leaves_closes_it() -> None:
    stream = Chunks(1024, 64 * 1024)  # 64 MiB

    async def main() -> None:
        async with serving(streaming(stream)) as s:
            _reader, writer = await connect(s.address)
            writer.write(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
            assert await until(lambda: stream.pulled > 0)  # the answer is flowing
            await asyncio.sleep(0.5)  # the subject: the client reads nothing for a while
            assert stream.pulled < 256  # held back by the client's socket, not buffered in outrider
            pulled = stream.pulled
            await asyncio.sleep(0.2)  # the subject: still nothing read, so nothing more is pulled
            assert stream.pulled == pulled
            writer.transport.abort()
            assert await until(lambda: stream.closed)
            assert stream.pulled < 1024
            assert await until(lambda: len(s.plane.tasks) == 0)

    loop.run(main())


def test_a_stream_that_breaks_off_resets_the_connection() -> None:
    stream = Chunks(10, 100, fail_after=3)

    async def main() -> None:
        async with serving(streaming(stream)) as s:
            reader, writer = await connect(s.address)
            writer.write(b"GET /s HTTP/1.1\r\nHost: t\r\n\r\n")
            await head_of(reader)
            data = b""
            try:
                while block := await asyncio.wait_for(reader.read(65536), 5):
                    data += block
            except ConnectionResetError:
                pass
            assert not data.endswith(b"0\r\n\r\n")  # never a clean end
            assert stream.closed
            writer.close()

    loop.run(main())


def test_answers_carry_the_request_id_and_only_outrider_feedback_tokens() -> None:
    async def terminal(ex: Exchange) -> Reply:
        ex.extra["x-own"] = "1"
        headers = CIMultiDict({FEEDBACK_TOKEN: "forged-by-upstream", "Content-Length": "999"})
        return Reply(200, headers, b"abc")

    async def main() -> None:
        async with serving(terminal) as s:
            reader, writer = await connect(s.address)
            writer.write(b"GET /a HTTP/1.1\r\nHost: t\r\nX-Request-Id: mine-1\r\n\r\n" + REQUEST + REQUEST)
            status, headers, body = await response(reader)
            assert (status, body) == (200, b"abc")  # its own Content-Length, never the reply's
            assert headers["x-request-id"] == "mine-1"
            assert FEEDBACK_TOKEN not in headers
            assert headers["x-own"] == "1"
            assert headers["x-outrider-variant"] == "none"
            assert "date" in headers
            ids = [(await response(reader))[1]["x-request-id"] for _ in range(2)]
            assert ids[0] != ids[1]
            assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
            writer.close()

    loop.run(main())


def test_http10_keep_alive_is_answered_as_such_and_header_injection_is_an_internal_error() -> None:
    async def terminal(ex: Exchange) -> Reply:
        if ex.inbound.path == "/bad":
            return Reply(200, CIMultiDict({"X-Evil": "a\r\nSet-Cookie: x=1"}), b"x")
        return Reply(200, CIMultiDict(), b"ok")

    async def main() -> None:
        async with serving(terminal) as s:
            reader, writer = await connect(s.address)
            writer.write(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, _ = await response(reader)
            assert (status, headers["connection"]) == (200, "keep-alive")
            writer.write(b"GET /bad HTTP/1.1\r\nHost: t\r\n\r\n")
            status, headers, _body = await response(reader)
            assert status == 500
            assert "set-cookie" not in headers
            assert await closed_within(reader, 2.0)
            writer.close()
            assert s.sample("outrider_internal_errors_total") == 1

    loop.run(main())
