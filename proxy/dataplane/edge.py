"""The edge: the one aiohttp handler of the data port. Reads the request once (capped), runs the chain,
and is the only place where an `OutriderError` becomes a response (`{"code", "detail", "request_id"}`).
A streamed reply (`Reply.stream`) is sent as it arrives: chunked unless its length is known, each write
awaiting the client (the backpressure), the stream closed when the client goes away. An upstream error after
the first byte aborts the client connection, so the client sees a cut body, never a clean end.
The server runs with `auto_decompress=False` (proxy.runtime.server): request bodies reach the upstream as
sent.

Usage: app.router.add_route("*", "/{tail:.*}", Edge(chain, metrics).handle)
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from aiohttp import HttpVersion10, HttpVersion11, web
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.dataplane.chain import Stage
from proxy.dataplane.errors import (
    BadFraming,
    BadRequest,
    OutriderError,
    PayloadTooLarge,
    RequestTimeout,
    UpstreamError,
    VersionNotSupported,
    error_body,
)
from proxy.dataplane.exchange import BodyStream, Exchange, Inbound, Reply
from proxy.dataplane.headers import end_to_end
from proxy.dataplane.reply_headers import REQUEST_ID, finish
from proxy.dataplane.request_headers import HeaderView
from proxy.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

CONTROL_PREFIX = "x-outrider-"
MAX_REQUEST_ID = 200


def request_id_of(headers: HeaderView) -> str:
    """The client's x-request-id if it is sane (printable ASCII, ≤ 200 chars), else a new one."""
    rid = headers.get(REQUEST_ID, "")
    if 0 < len(rid) <= MAX_REQUEST_ID and rid.isascii() and rid.isprintable():
        return rid
    return uuid.uuid4().hex


def error_reply(err: OutriderError, request_id: str) -> Reply:
    """The JSON body every outrider-made error carries."""
    headers = CIMultiDict({"Content-Type": "application/json", **err.headers})
    return Reply(err.status, headers, error_body(err, request_id), close=err.close_connection)


def check_framing(request: web.Request) -> None:
    """Refuse what aiohttp's parser lets through but a proxy must not forward (RFC 9112 §6.1, §2.3)."""
    if request.version not in (HttpVersion10, HttpVersion11):
        version = f"{request.version.major}.{request.version.minor}"
        raise VersionNotSupported(f"HTTP/{version} is not supported here")
    if request.version == HttpVersion10 and "Transfer-Encoding" in request.headers:
        raise BadFraming("Transfer-Encoding in an HTTP/1.0 request")


def inbound_headers(request: web.Request) -> CIMultiDictProxy[str]:
    """End-to-end request headers without client-sent `x-outrider-*` control headers."""
    headers = end_to_end(request.headers)
    for key in [k for k in headers if k.lower().startswith(CONTROL_PREFIX)]:
        headers.popall(key, None)
    return CIMultiDictProxy(headers)


@dataclass(frozen=True, slots=True)
class BodyPace:
    """How fast a request body must arrive: `received` bytes by start + grace_s + received / min_rate."""

    grace_s: float = 10.0  # the header timeout: a body may start as late as a header block may end
    min_rate: int = 1024  # bytes/second, docs/reliability.md "Safe defaults"


async def read_body(request: web.Request, cap: int, pace: BodyPace = BodyPace()) -> bytes:
    """The whole body; PayloadTooLarge as soon as it is known to exceed `cap`, RequestTimeout (408) when it
    falls behind `pace` (checked per chunk, so a trickle of single bytes is cut off at its deadline)."""
    if request.content_length is not None and request.content_length > cap:
        raise PayloadTooLarge(f"body of {request.content_length} bytes is over the cap of {cap}")
    loop = asyncio.get_running_loop()
    start = loop.time()
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout_at(start + pace.grace_s + size / pace.min_rate):
                chunk = await request.content.readany()
        except TimeoutError:
            raise RequestTimeout(
                f"body arrived slower than {pace.min_rate} bytes/s ({size} bytes received)"
            ) from None
        except ConnectionError:  # the client went away mid-body: nobody will read the answer
            raise BadRequest("connection closed before the body was complete") from None
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise PayloadTooLarge(f"body is over the cap of {cap} bytes")
        chunks.append(chunk)


class Edge:
    """Turns aiohttp requests into exchanges and replies into aiohttp responses."""

    def __init__(
        self, chain: Stage, metrics: Metrics, max_body_bytes: int, pace: BodyPace = BodyPace()
    ) -> None:
        self.chain = chain
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.pace = pace

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for every path of the data port."""
        received_at, mono = time.time(), time.monotonic()
        rid = request_id_of(request.headers)
        ex: Exchange | None = None
        try:
            check_framing(request)
            body = await self._read_body(request)
            inbound = Inbound(
                request.method,
                request.path_qs,
                inbound_headers(request),
                body,
                request.remote,
                received_at,
                mono,
                rid,
            )
            ex = Exchange(inbound)
            reply = await self.chain(ex)
        except OutriderError as err:
            reply = error_reply(err, rid)
            if isinstance(err, UpstreamError):
                self._count_upstream_error(err, ex)
        except Exception:
            log.exception("internal error on %s %s", request.method, request.path)
            self.metrics.internal_errors.inc()
            reply = error_reply(OutriderError("internal error"), rid)
        response = self._respond(reply, ex, rid, mono)
        if reply.stream is not None:
            try:
                await self._send_stream(request, response, reply.stream, ex)
            finally:
                self._observe(reply.status, ex, mono)
        return response

    async def _send_stream(
        self, request: web.Request, response: web.StreamResponse, stream: BodyStream, ex: Exchange | None
    ) -> None:
        """Write the stream's chunks as they come; close it whatever happens."""
        try:
            await response.prepare(request)
            async for chunk in stream:
                await response.write(chunk)
            await response.write_eof()
        except UpstreamError as err:  # after the first byte: cut the connection, the body is incomplete
            self._count_upstream_error(err, ex)
            if request.transport is not None:
                request.transport.abort()
        except ConnectionError:  # the client went away; aiohttp notices on its own
            pass
        finally:  # a cancellation (the client gone while we waited for the upstream) passes through here
            await stream.aclose()

    async def _read_body(self, request: web.Request) -> bytes:
        try:
            return await read_body(request, self.max_body_bytes, self.pace)
        except RequestTimeout:
            self.metrics.slow_clients_closed.labels("body").inc()
            raise

    def _count_upstream_error(self, err: UpstreamError, ex: Exchange | None) -> None:
        a = ex.assignment if ex is not None else None
        experiment, variant = (a.experiment.name, a.variant.name) if a is not None else ("", "default")
        self.metrics.upstream_errors.labels(experiment, variant, err.error_class).inc()

    def _respond(self, reply: Reply, ex: Exchange | None, rid: str, mono: float) -> web.StreamResponse:
        experiment, variant = finish(reply, ex, rid)
        headers = reply.headers
        response: web.StreamResponse
        if reply.stream is not None:  # observed when its stream ends
            response = web.StreamResponse(status=reply.status, headers=headers)
        else:
            self.metrics.observe(experiment, variant, reply.status, time.monotonic() - mono)
            response = web.Response(status=reply.status, headers=headers, body=reply.body)
        if reply.close:
            response.force_close()
        return response

    def _observe(self, status: int, ex: Exchange | None, mono: float) -> None:
        a = ex.assignment if ex is not None else None
        experiment, variant = (a.experiment.name, a.variant.name) if a is not None else ("", "default")
        self.metrics.observe(experiment, variant, status, time.monotonic() - mono)
