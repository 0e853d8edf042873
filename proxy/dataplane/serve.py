"""Answering one request on the native data plane: run its chain, turn errors into replies as the edge
does (proxy.dataplane.edge.error_reply), write the reply — a fixed body with Content-Length, or a
`Reply.stream` as it
arrives (chunked on HTTP/1.1 unless the reply names a Content-Length; close-delimited on HTTP/1.0), waiting
while the client's transport is above its high-water mark.

Usage: task = tasks.spawn(serve(conn, req), name="request")  (proxy.dataplane.connection does this)
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from proxy.dataplane.chain import Stage
from proxy.dataplane.edge import error_reply
from proxy.dataplane.errors import OutriderError, UpstreamError
from proxy.dataplane.exchange import BodyStream, Exchange, Inbound, Reply
from proxy.dataplane.reply_headers import finish
from proxy.dataplane.respond import render_head, reply_head

if TYPE_CHECKING:
    from proxy.dataplane.connection import Connection
    from proxy.dataplane.request import Request

log = logging.getLogger(__name__)

ONE_WRITE = 16 * 1024  # bodies up to this size go out in the same write as their head
_LAST_CHUNK = b"0\r\n\r\n"


async def serve(conn: Connection, req: Request) -> None:
    """Run `req` through its chain and answer it; the connection moves on when this returns."""
    assert req.chain is not None
    await answer(conn, req, exchange_of(conn, req), req.chain)


def exchange_of(conn: Connection, req: Request) -> Exchange:
    """The exchange a parsed request starts as (a body still arriving is left for the `body` stage)."""
    head, body = req.head, req.body
    assert head is not None
    pending, data = None, b""
    if body is not None:
        if body.complete:
            data = body.take()
        else:
            pending = body  # read by the `body` stage, after auth, rate limits and routing
    inbound = Inbound(
        head.method, head.path, head.headers, data, conn.peer, req.received_at, req.received_mono, req.rid
    )
    return Exchange(inbound, pending_body=pending)


async def answer(conn: Connection, req: Request, ex: Exchange, stage: Stage) -> None:
    """Run `ex` through `stage` (the chain, or what is left of it) and send the answer or the error."""
    try:
        try:
            reply = await stage(ex)
        except Exception as err:
            reply = error_answer(conn, ex, err)
        await send(conn, req, ex, reply)
    finally:
        conn.done(req)


def error_answer(conn: Connection, ex: Exchange, err: Exception) -> Reply:
    """The reply for an error the chain raised (an internal one is logged and counted)."""
    rid = ex.inbound.request_id
    if isinstance(err, OutriderError):
        if isinstance(err, UpstreamError):
            count_upstream_error(conn, err, ex)
        return error_reply(err, rid)
    log.error("internal error on %s %s", ex.inbound.method, ex.inbound.path, exc_info=err)
    conn.plane.metrics.internal_errors.inc()
    return error_reply(OutriderError("internal error"), rid)


def refuse(conn: Connection, req: Request) -> None:
    """Answer a request refused before its chain (no task: nothing to wait for)."""
    assert req.refusal is not None
    reply = error_reply(req.refusal, req.rid)
    experiment, variant = finish(reply, None, req.rid)
    req.close = close_after(conn, req, reply)
    write_fixed(conn, req, reply)
    conn.plane.metrics.observe(experiment, variant, reply.status, time.monotonic() - req.received_mono)
    conn.done(req)


def timeout_answer(conn: Connection, err: OutriderError) -> None:
    """408 for a header block that did not complete in time (written as the connection closes)."""
    rid = conn.plane.ids.next()
    reply = error_reply(err, rid)
    finish(reply, None, rid)
    framing = f"Content-Length: {len(reply.body)}\r\nConnection: close\r\n"
    if conn.transport is not None:
        conn.transport.write(render_head(reply.status, reply.headers, framing, version10=False) + reply.body)


def count_upstream_error(conn: Connection, err: UpstreamError, ex: Exchange) -> None:
    """outrider_upstream_errors_total, labelled as the edge labels it."""
    a = ex.assignment
    experiment, variant = (a.experiment.name, a.variant.name) if a is not None else ("", "default")
    conn.plane.metrics.upstream_errors.labels(experiment, variant, err.error_class).inc()


def close_after(conn: Connection, req: Request, reply: Reply) -> bool:
    """Whether the connection closes after this answer."""
    return (
        not req.keep_alive
        or reply.close
        or req.body_unread  # the rest of its body is still on the wire: nothing after it can be parsed
        or (conn.dead and not conn.queue)  # nothing more will be read
    )


def send_whole(conn: Connection, req: Request, ex: Exchange | None, reply: Reply) -> None:
    """`send` for an answer without a stream (it never waits)."""
    experiment, variant = finish(reply, ex, req.rid)
    try:
        if not conn.lost and not conn.closing:
            req.close = close_after(conn, req, reply)
            write_fixed(conn, req, reply)
    finally:
        conn.plane.metrics.observe(experiment, variant, reply.status, time.monotonic() - req.received_mono)


async def send(conn: Connection, req: Request, ex: Exchange | None, reply: Reply) -> None:
    """Add the edge's headers, write the answer, count the request (a streamed one when its stream ends)."""
    if reply.stream is None:
        send_whole(conn, req, ex, reply)
        return
    experiment, variant = finish(reply, ex, req.rid)
    try:
        if conn.lost or conn.closing:
            if reply.stream is not None:
                await reply.stream.aclose()
            return
        req.close = close_after(conn, req, reply)
        await write_stream(conn, req, reply, reply.stream)
    finally:
        conn.plane.metrics.observe(experiment, variant, reply.status, time.monotonic() - req.received_mono)


def _bodiless(req: Request, status: int) -> bool:
    return status < 200 or status in (204, 304)


def _connection(req: Request) -> str:
    if req.close:
        return "" if req.version10 else "Connection: close\r\n"  # HTTP/1.0 closes unless told otherwise
    return "Connection: keep-alive\r\n" if req.version10 else ""


def _head(conn: Connection, req: Request, reply: Reply, framing: str) -> bytes | None:
    try:
        return reply_head(reply, framing + _connection(req), version10=req.version10)
    except ValueError:
        log.exception("unsendable answer headers on %s", req.method)
        conn.plane.metrics.internal_errors.inc()
        return None


def write_fixed(conn: Connection, req: Request, reply: Reply) -> None:
    """A complete answer: head and body in one write when small (HEAD, 204, 304 and 1xx get no body)."""
    transport = conn.transport
    assert transport is not None
    bodiless = _bodiless(req, reply.status)
    body = b"" if bodiless or req.method == "HEAD" else reply.body
    head = _head(conn, req, reply, "" if bodiless else f"Content-Length: {len(reply.body)}\r\n")
    if head is None:
        req.close = True
        fallback = error_reply(OutriderError("internal error"), req.rid)
        finish(fallback, None, req.rid)
        head = _head(conn, req, fallback, f"Content-Length: {len(fallback.body)}\r\n")
        body = fallback.body
        assert head is not None
    if not body:
        transport.write(head)
    elif len(body) <= ONE_WRITE:
        transport.write(head + body)
    else:
        transport.writelines((head, body))


async def write_stream(conn: Connection, req: Request, reply: Reply, stream: BodyStream) -> None:
    """An answer whose body arrives in pieces: sent as it arrives; the stream is closed in every case."""
    transport = conn.transport
    assert transport is not None
    declared = reply.headers.get("Content-Length", "")
    length = int(declared) if declared.isascii() and declared.isdigit() else None
    if _bodiless(req, reply.status) or req.method == "HEAD":
        await stream.aclose()
        framing = f"Content-Length: {length}\r\n" if length is not None else ""
        head = _head(conn, req, reply, framing)
        if head is None:
            conn.abort()
        else:
            transport.write(head)
        return
    chunked = length is None and not req.version10
    if length is None and req.version10:
        req.close = True  # close-delimited: the end of the body is the end of the connection
    framing = "Transfer-Encoding: chunked\r\n" if chunked else ""
    if length is not None:
        framing = f"Content-Length: {length}\r\n"
    head = _head(conn, req, reply, framing)
    if head is None:
        await stream.aclose()
        conn.abort()
        return
    transport.write(head)
    await _pump(conn, req, stream, chunked, length)


async def _pump(
    conn: Connection, req: Request, stream: BodyStream, chunked: bool, length: int | None
) -> None:
    transport = conn.transport
    assert transport is not None
    sent = 0
    req.streaming = True  # a client that goes away cancels this task: the stream is closed below
    try:
        async for chunk in stream:
            if conn.lost:
                return
            if not chunk:
                continue
            if length is not None and sent + len(chunk) > length:
                log.warning("answer stream longer than its Content-Length %d; cut", length)
                conn.abort()
                return
            if chunked:
                transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
            else:
                transport.write(chunk)
            sent += len(chunk)
            if conn.write_paused:
                await conn.drain()
        if chunked:
            transport.write(_LAST_CHUNK)
        elif length is not None and sent != length:
            log.warning("answer stream ended at %d of its Content-Length %d", sent, length)
            conn.abort()
    except asyncio.CancelledError:
        raise
    except Exception:  # after the head nothing can be said: the client must see a broken answer
        log.warning("answer stream failed after its head was sent", exc_info=True)
        conn.abort()
    finally:
        req.streaming = False
        await stream.aclose()
