"""`forward`: the terminal stage. Sends the request to `ex.upstream_url` over the upstream pool
(proxy.upstream) and returns the answer: whole when small, otherwise as `Reply.stream`, read as the client
takes it. Bodies pass byte for byte both ways, whatever their Content-Encoding.

Connect failure or reset → 502, route timeout → 504 (typed errors; the edge renders them). A refused connect
is retried once within its upstream's retry budget (`proxy.upstream.retry_budget`); nothing that may have
sent a
byte is. The route timeout covers the whole of a buffered answer and the head of a streamed one; a streamed
body then has its experiment's `streamIdleTimeout` (the longest silence, first token included) and
`streamTimeout` (its longest life): either ends the stream with `UpstreamTimeout`, an error of its record.
Usage: forward = Forward(UpstreamPool()); reply = await forward(exchange)
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time

from multidict import CIMultiDict

from experiments.model import DEFAULT_STREAM_IDLE_TIMEOUT_S, DEFAULT_TIMEOUT_S
from proxy.dataplane.chain import Landed
from proxy.dataplane.errors import BadRequest, UpstreamTimeout, UpstreamUnavailable
from proxy.dataplane.exchange import Exchange, Reply
from proxy.dataplane.request_headers import HeaderView, RequestHeaders
from proxy.upstream import Origin, UpstreamPool, UpstreamResponse, origin_of
from proxy.upstream.connection import UpstreamConnection
from proxy.upstream.retry_budget import RetryBudget, RetryBudgets

RETRY_RESULTS = ("recovered", "failed", "budget_exhausted")
UNTRUSTED_FORWARDING = ("forwarded", "x-real-ip", "x-forwarded-proto", "x-forwarded-host")
"""Forwarding headers an untrusted client could forge; dropped unless the peer is a trusted proxy."""
BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
"""Methods sent without `Content-Length: 0` when they carry no body (as aiohttp's client did)."""
_BAD_TARGET = re.compile(r"[^\x21-\x7e]")  # a request target is visible ASCII (RFC 9112 §3.2)


def forwarded_headers(ex: Exchange) -> CIMultiDict[str]:
    """The client's end-to-end headers plus X-Forwarded-For/-Proto and the request id.

    Only a trusted proxy's forwarding headers are passed on (its X-Forwarded-For extended with the peer);
    from anyone else they are replaced by what outrider saw itself, so the upstream is never lied to.
    """
    headers = CIMultiDict(ex.inbound.headers.items())
    peer = ex.inbound.peer
    prior = headers.popall("x-forwarded-for", [])
    trusted = ex.client is not None and ex.client.peer_trusted
    if not trusted:
        prior = []
        for name in UNTRUSTED_FORWARDING:
            headers.popall(name, None)
    chain = [*prior, peer] if peer else prior
    if chain:
        headers["X-Forwarded-For"] = ", ".join(chain)
    headers.setdefault("X-Forwarded-Proto", "http")
    headers["X-Request-Id"] = ex.inbound.request_id
    return headers


_NOT_COPIED = frozenset({b"host", b"expect", b"x-forwarded-for", b"x-forwarded-proto", b"x-request-id"})
"""Request headers `request_head` writes itself (or drops), never copied from the client."""
_NOT_COPIED_UNTRUSTED = _NOT_COPIED | frozenset(name.encode() for name in UNTRUSTED_FORWARDING)


def _as_sent(headers: HeaderView) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """(name, value) pairs as bytes and their lower-case names: the native plane's as they came, a mapping's
    encoded back (aiohttp decoded header bytes as UTF-8 with surrogateescape: this gives the same bytes)."""
    if isinstance(headers, RequestHeaders):
        return headers.pairs, headers.lowered
    pairs = [
        (k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
        for k, v in headers.items()
    ]
    return pairs, [name.lower() for name, _ in pairs]


def request_head(ex: Exchange, origin: Origin, preserve_host: bool = False) -> bytes:
    """The request line and headers for the upstream, the client's headers in the bytes it sent.

    The same headers as `forwarded_headers` (one pass, no copy: this runs on every request). `Host` is the
    upstream's own unless `preserve_host`; `Expect` is dropped (the body is already read and sent right
    behind the head, so an interim 100 would only cost a round trip); the body's length is outrider's
    framing on this leg.
    """
    inbound = ex.inbound
    target = origin.prefix + (ex.upstream_path or inbound.path)
    if _BAD_TARGET.search(target) is not None:
        raise BadRequest("request target with characters that cannot be forwarded")
    trusted = ex.client is not None and ex.client.peer_trusted
    skip = _NOT_COPIED if trusted else _NOT_COPIED_UNTRUSTED
    host: bytes | None = None
    prior: list[bytes] = []
    proto = b"http"
    lines = [b""]
    pairs, lowered = _as_sent(inbound.headers)
    for i in range(len(pairs)):
        lower = lowered[i]
        name, value = pairs[i]
        if lower not in skip:
            lines.append(name + b": " + value + b"\r\n")
        elif lower == b"host":
            if preserve_host:
                host, preserve_host = value, False  # the first Host, as the client sent it
        elif lower == b"x-forwarded-for":
            if trusted:
                prior.append(value)
        elif lower == b"x-forwarded-proto" and proto == b"http" and trusted:
            proto = value
    # the target is visible ASCII (checked above), the method a token, the request id sane ASCII
    first = f"{inbound.method} {target} HTTP/1.1\r\nHost: ".encode()
    lines[0] = first + (origin.host_header.encode() if host is None else host) + b"\r\n"
    peer = inbound.peer
    if peer:
        prior.append(peer.encode())
    if prior:
        lines.append(b"X-Forwarded-For: " + b", ".join(prior) + b"\r\n")
    lines.append(
        b"X-Forwarded-Proto: " + proto + b"\r\nX-Request-Id: " + inbound.request_id.encode() + b"\r\n"
    )
    if inbound.body or inbound.method not in BODYLESS_METHODS:
        lines.append(b"Content-Length: %d\r\n" % len(inbound.body))
    lines.append(b"\r\n")
    return b"".join(lines)


class ConnectFailed(UpstreamUnavailable):
    """The connection could not be made, so no request byte was sent: the one failure worth a retry."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, error_class="connect_error")


class Forward:
    """Proxies one exchange over the shared upstream pool.

    A refused connect is retried once if the retry budget allows; nothing else is ever retried, because
    after a connection is made some request bytes may have reached the upstream.
    """

    def __init__(
        self,
        pool: UpstreamPool,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        budgets: RetryBudgets | None = None,
        *,
        preserve_host: bool = False,
    ) -> None:
        self.pool = pool
        self.default_timeout_s = default_timeout_s
        self.default_stream_idle_s = DEFAULT_STREAM_IDLE_TIMEOUT_S
        """Streams of requests outside any experiment (the default upstream)."""
        self.budgets = budgets or RetryBudgets()
        self.preserve_host = preserve_host
        """Send the client's Host rather than the upstream's (`forward.preserveHost`)."""
        self.retries = dict.fromkeys(RETRY_RESULTS, 0)
        """Connect retries by result: recovered (answered), failed, budget_exhausted (not attempted)."""

    async def __call__(self, ex: Exchange) -> Reply:
        """Send; return the answer (whole, or streaming); map failures to 502/504."""
        url = ex.upstream_url
        assert url is not None
        timeout = ex.assignment.experiment.timeout_s if ex.assignment else self.default_timeout_s
        origin = origin_of(url)
        head = request_head(ex, origin, self.preserve_host)
        budget = self.budgets.of(url)
        budget.record_request()
        started = time.monotonic()
        retried = False
        try:
            conn = self.pool.take(origin)
            if conn is None:
                deadline = asyncio.get_running_loop().time() + timeout
                conn, retried = await self._connect(origin, budget, deadline, timeout)
            resp = self._send(ex, conn, head, timeout)
            try:
                await resp.ready
            except BaseException as err:  # an upstream error, or the client gone (cancelled)
                raise self._failure(resp, err, timeout) from None
            reply = self._reply(ex, resp, started)
        except BaseException:
            if retried:
                self.retries["failed"] += 1
            raise
        finally:
            ex.upstream_ms = (time.monotonic() - started) * 1000.0
        if retried:
            self.retries["recovered"] += 1
        return reply

    def start(self, ex: Exchange, landed: Landed) -> bool:
        """`__call__` on callbacks, for a request whose upstream has an idle pooled connection (False, and
        nothing done, when it has none). `landed` gets the reply or the error, as `__call__` would return or
        raise it; `ex.cancel` then stops the exchange (the client went away)."""
        url = ex.upstream_url
        assert url is not None
        origin = origin_of(url)
        conn = self.pool.take(origin)
        if conn is None:
            return False
        try:
            head = request_head(ex, origin, self.preserve_host)
        except BaseException:
            self.pool.release(conn)
            raise
        self.budgets.of(url).record_request()
        timeout = ex.assignment.experiment.timeout_s if ex.assignment else self.default_timeout_s
        started = time.monotonic()
        resp = self._send(ex, conn, head, timeout)

        def ready(fut: asyncio.Future[None]) -> None:
            ex.upstream_ms = (time.monotonic() - started) * 1000.0
            err = asyncio.CancelledError() if fut.cancelled() else fut.exception()
            if err is not None:
                landed(self._failure(resp, err, timeout))
                return
            try:
                reply = self._reply(ex, resp, started)
            except BaseException as failure:
                landed(failure)
            else:
                landed(reply)

        resp.ready.add_done_callback(ready)
        ex.cancel = resp.ready.cancel
        return True

    def _send(self, ex: Exchange, conn: UpstreamConnection, head: bytes, timeout: float) -> UpstreamResponse:
        """Write the request on `conn` with its deadlines (a pooled connection knows the running loop: no
        lookup, which is a getpid syscall on Python 3.11)."""
        assert conn.loop is not None
        inbound = ex.inbound
        resp = conn.send(head, inbound.body, conn.loop.time() + timeout, inbound.method == "HEAD")
        if ex.assignment is not None:  # a streamed answer's deadlines, from its head on
            resp.stream_idle_s = ex.assignment.experiment.stream_idle_timeout_s
            resp.stream_limit_s = ex.assignment.experiment.stream_timeout_s
        else:
            resp.stream_idle_s = self.default_stream_idle_s
        return resp

    @staticmethod
    def _failure(resp: UpstreamResponse, err: BaseException, timeout: float) -> BaseException:
        """The error an unanswered request ends in (its upstream connection closed)."""
        resp.abort()
        if isinstance(err, UpstreamTimeout):
            return UpstreamTimeout(f"upstream did not answer within {timeout:g}s")
        return err

    def _reply(self, ex: Exchange, resp: UpstreamResponse, started: float) -> Reply:
        if resp.first_byte_at is not None:
            ex.ttfb_ms = (resp.first_byte_at - ex.inbound.received_mono) * 1000.0
        if resp.body_done and resp.error is not None:  # failed before the client got anything: a 502/504
            resp.abort()
            raise resp.error
        # a streamed answer that is already all here (a small chunked one) goes whole: cheaper, same bytes
        if not resp.streamed or (resp.body_done and not resp.event_stream):
            return Reply(resp.status, None, resp.body(), raw=resp.raw)
        headers = resp.raw.multidict()
        if resp.content_length is not None:  # the client gets the same framing: length known up front
            headers["Content-Length"] = str(resp.content_length)

        def upstream_done() -> None:  # the upstream's time is the whole body's for a stream
            ex.upstream_ms = (time.monotonic() - started) * 1000.0

        resp.on_end = upstream_done
        return Reply(resp.status, headers, b"", stream=resp)

    async def _connect(
        self, origin: Origin, budget: RetryBudget, deadline: float, timeout: float
    ) -> tuple[UpstreamConnection, bool]:
        """A new connection, and whether it took a retry."""
        try:
            return await self._open(origin, deadline, timeout), False
        except ConnectFailed:
            if not budget.try_retry():
                self.retries["budget_exhausted"] += 1
                raise
        try:
            return await self._open(origin, deadline, timeout), True
        except BaseException:  # the route timeout (a cancellation) included
            self.retries["failed"] += 1
            raise

    async def _open(self, origin: Origin, deadline: float, timeout: float) -> UpstreamConnection:
        route = asyncio.timeout_at(deadline)
        try:
            async with route:
                return await self.pool.connect(origin)
        except TimeoutError:
            if route.expired():
                raise UpstreamTimeout(f"upstream did not answer within {timeout:g}s") from None
            raise UpstreamUnavailable("connect to upstream timed out", error_class="connect_error") from None
        except ssl.SSLError as err:  # not transient: never retried
            detail = f"TLS with upstream failed: {err}"
            raise UpstreamUnavailable(detail, error_class="connect_error") from None
        except OSError as err:
            raise ConnectFailed(f"cannot connect to upstream: {err}") from None
