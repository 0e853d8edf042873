"""`forward`: the terminal stage. Sends the request to `ex.upstream_url` and returns the upstream's answer.

Connect failure or reset → 502, route timeout → 504 (typed errors; the edge renders them). A refused connect
is retried once within its upstream's retry budget (`proxy.retry_budget`); nothing that may have sent a
byte is.
Usage: forward = Forward(session); reply = await forward(exchange)
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from multidict import CIMultiDict

from experiments.model import DEFAULT_TIMEOUT_S
from proxy.errors import UpstreamTimeout, UpstreamUnavailable
from proxy.exchange import Exchange, Reply
from proxy.headers import end_to_end
from proxy.retry_budget import RetryBudget, RetryBudgets

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
RETRY_RESULTS = ("recovered", "failed", "budget_exhausted")
UNTRUSTED_FORWARDING = ("forwarded", "x-real-ip", "x-forwarded-proto", "x-forwarded-host")
"""Forwarding headers an untrusted client could forge; dropped unless the peer is a trusted proxy."""


def forwarded_headers(ex: Exchange) -> CIMultiDict[str]:
    """The client's end-to-end headers plus X-Forwarded-For/-Proto and the request id.

    Only a trusted proxy's forwarding headers are passed on (its X-Forwarded-For extended with the peer);
    from anyone else they are replaced by what outrider saw itself, so the upstream is never lied to.
    """
    headers = CIMultiDict(ex.inbound.headers)
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


def retryable(err: aiohttp.ClientConnectorError) -> bool:
    """A connect failure no request byte can have followed; TLS failures are not transient, so not retried."""
    return not isinstance(err, aiohttp.ClientSSLError)


class Forward:
    """Proxies one exchange over a shared client session (its connection pool).

    A failed connect is retried once if the retry budget allows; nothing else is ever retried, because
    after a connection is made some request bytes may have reached the upstream.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        budgets: RetryBudgets | None = None,
    ) -> None:
        self.session = session
        self.default_timeout_s = default_timeout_s
        self.budgets = budgets or RetryBudgets()
        self.retries = dict.fromkeys(RETRY_RESULTS, 0)
        """Connect retries by result: recovered (answered), failed, budget_exhausted (not attempted)."""

    async def __call__(self, ex: Exchange) -> Reply:
        """Send and read the whole answer; map failures to 502/504."""
        assert ex.upstream_url is not None
        inbound = ex.inbound
        timeout = ex.assignment.experiment.timeout_s if ex.assignment else self.default_timeout_s
        started = time.monotonic()
        budget = self.budgets.of(ex.upstream_url)
        budget.record_request()
        try:
            async with asyncio.timeout(timeout):
                return await self._send_with_retry(ex, ex.upstream_url + inbound.path, budget)
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamUnavailable("connect to upstream timed out", error_class="connect_error") from None
        except TimeoutError:
            raise UpstreamTimeout(f"upstream did not answer within {timeout:g}s") from None
        except aiohttp.ClientConnectorError as err:
            raise UpstreamUnavailable(
                f"cannot connect to upstream: {err.os_error}", error_class="connect_error"
            ) from None
        except aiohttp.ClientResponseError as err:
            raise UpstreamUnavailable(
                f"invalid upstream response: {err.message}", error_class="invalid_response"
            ) from None
        except (aiohttp.ClientError, ConnectionError) as err:
            raise UpstreamUnavailable(f"upstream connection failed: {type(err).__name__}") from None
        finally:
            ex.upstream_ms = (time.monotonic() - started) * 1000.0

    async def _send_with_retry(self, ex: Exchange, url: str, budget: RetryBudget) -> Reply:
        try:
            return await self._send(ex, url)
        except aiohttp.ClientConnectorError as err:
            if not retryable(err):
                raise
            if not budget.try_retry():
                self.retries["budget_exhausted"] += 1
                raise
        try:
            reply = await self._send(ex, url)
        except BaseException:  # the route timeout (a cancellation) included
            self.retries["failed"] += 1
            raise
        self.retries["recovered"] += 1
        return reply

    async def _send(self, ex: Exchange, url: str) -> Reply:
        inbound = ex.inbound
        body = (
            inbound.body
            if inbound.body or inbound.method not in ("GET", "HEAD", "DELETE", "OPTIONS")
            else None
        )
        async with self.session.request(
            inbound.method, url, headers=forwarded_headers(ex), data=body, allow_redirects=False
        ) as resp:
            length = resp.content_length
            if length is not None and length > MAX_RESPONSE_BYTES:
                raise UpstreamUnavailable("upstream response over 64 MiB", error_class="invalid_response")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > MAX_RESPONSE_BYTES:
                    raise UpstreamUnavailable("upstream response over 64 MiB", error_class="invalid_response")
                chunks.append(chunk)
            return Reply(resp.status, end_to_end(resp.headers), b"".join(chunks))


def client_session(connect_timeout_s: float = 2.0, limit: int = 4096) -> aiohttp.ClientSession:
    """The upstream pool: keep-alive, no decompression, no default headers the client did not send."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, keepalive_timeout=75, ttl_dns_cache=60)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
