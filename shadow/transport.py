"""How a shadow copy goes out: `ShadowJob`, the `Send` seam, and `HttpSend`, the default (aiohttp, own pool).

The dispatcher (`shadow.dispatch`) queues jobs and runs workers; each worker hands a job to a `Send` — an
async function from a job to its `ShadowResult` — so the queue, the circuit breaker and the counters are
tested without sockets by giving the dispatcher a function instead of `HttpSend`.
Usage: `async with HttpSend(workers=16, max_bytes=1 << 20) as send: result = await send(job)`
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType

import aiohttp
import yarl
from multidict import CIMultiDict

from plumbing.http_client import TooLarge, http_session, read_capped
from shadow.compare.answer import answer_headers
from shadow.pairing import Pair, ShadowResult


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """One copy of a request for one shadow variant."""

    variant: str
    url: str
    method: str
    headers: CIMultiDict[str]
    body: bytes
    pair: Pair
    timeout_s: float
    compared: bool = False
    """Whether the answer will be compared with the primary's (it then needs room in the compare pool)."""
    max_bytes: int | None = None
    """Largest answer read (the experiment's `spec.shadow.maxBodyBytes`); None: the limits' default."""
    via: Callable[[ShadowJob], Awaitable[ShadowResult]] | None = None
    """Makes the call instead of HTTP (the gRPC port's copies: `url` is then HOST:PORT, `method` the RPC)."""


Send = Callable[[ShadowJob], Awaitable[ShadowResult]]
"""Sends one copy and says what came back; never raises for the shadow's own failures (they are results)."""


class HttpSend:
    """Copies over HTTP/1.1 on one aiohttp pool of `workers` connections, answers read up to a cap."""

    def __init__(self, workers: int, max_bytes: int) -> None:
        self.workers, self.max_bytes = workers, max_bytes
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> HttpSend:
        self._session = http_session(
            timeout_s=None,  # each copy has its own deadline (`ShadowJob.timeout_s`)
            limit=self.workers,
            keepalive_s=30,
            decompress=False,  # the bytes as sent (shadow.compare.answer decodes them)
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def __call__(self, job: ShadowJob) -> ShadowResult:
        assert self._session is not None, "HttpSend is used inside `async with`"
        started = time.monotonic()
        try:
            async with asyncio.timeout(job.timeout_s):
                # encoded=True: the target goes out as the primary's does (already normalised by `route`),
                # not re-quoted by yarl (which would decode `%2e%2e` in the query, for one).
                url = yarl.URL(job.url, encoded=True)
                async with self._session.request(
                    job.method, url, headers=job.headers, data=job.body, allow_redirects=False
                ) as resp:
                    body = await read_capped(resp, job.max_bytes or self.max_bytes)
        except TooLarge as err:  # the shadow did answer: not a failure for its circuit, just not compared
            return ShadowResult(err.status, "response_too_large", _ms(started))
        except TimeoutError:
            return ShadowResult(0, "timeout", _ms(started))
        except aiohttp.ClientConnectorError:
            return ShadowResult(0, "connect_error", _ms(started))
        except (aiohttp.ClientPayloadError, aiohttp.ClientResponseError):
            return ShadowResult(0, "invalid_response", _ms(started))
        except (aiohttp.ClientError, ConnectionError):
            return ShadowResult(0, "upstream_reset", _ms(started))
        error = "upstream_5xx" if resp.status >= 500 else None
        return ShadowResult(resp.status, error, _ms(started), body, answer_headers(resp.headers))


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
