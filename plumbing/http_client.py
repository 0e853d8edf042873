"""outrider's HTTP client calls: one way to open an aiohttp session, one way to read an answer up to a cap.

Usage:
    async with http_session(timeout_s=2.0) as session, session.get(url) as resp:
        body = await read_capped(resp, 1 << 20)       # TooLarge beyond the cap, the rest is not read

Defaults (each caller states only what differs): a whole-call timeout of `DEFAULT_TIMEOUT_S`, no cookies
kept (outrider's calls are to machines: a cookie one answer sets must not ride along on the next call, to
that or any other host), answers decompressed, aiohttp's pool (`limit` connections, idle ones kept
`keepalive_s`).
"""

from __future__ import annotations

from collections.abc import Iterable

import aiohttp
from aiohttp.client import DEFAULT_TIMEOUT as AIOHTTP_TIMEOUT

__all__ = ["DEFAULT_TIMEOUT_S", "TooLarge", "http_session", "read_capped"]

DEFAULT_TIMEOUT_S = 30.0


def http_session(
    *,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    limit: int = 100,
    keepalive_s: float = 15.0,
    decompress: bool = True,
    skip_auto_headers: Iterable[str] = (),
) -> aiohttp.ClientSession:
    """A new session (the caller closes it: `async with`, or `await session.close()`).

    `timeout_s`: total time of one call, connect to last byte; None: aiohttp's own (5 minutes, 30 s to
    connect: for a caller that bounds each call itself). `limit`: connections open at once (0: no limit).
    `decompress`: False hands on gzip/deflate bodies as they came. `skip_auto_headers`: headers aiohttp
    must not add."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=keepalive_s),
        timeout=AIOHTTP_TIMEOUT if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=decompress,
        skip_auto_headers=tuple(skip_auto_headers),
    )


class TooLarge(Exception):
    """An answer over the reader's cap (it is not read further)."""

    def __init__(self, status: int, cap: int, length: int | None) -> None:
        said = f"of {length} bytes " if length is not None else ""
        super().__init__(f"answer {said}over the cap of {cap} bytes (status {status})")
        self.status, self.cap, self.length = status, cap, length
        """`length`: the Content-Length, when it said so up front (None: found while reading)."""


async def read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The whole body of `resp`, or TooLarge as soon as it is known to exceed `cap` bytes: at once from
    its Content-Length, else after the chunk that goes over (so at most `cap` + one chunk is held)."""
    if resp.content_length is not None and resp.content_length > cap:
        raise TooLarge(resp.status, cap, resp.content_length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > cap:
            raise TooLarge(resp.status, cap, None)
        chunks.append(chunk)
    return b"".join(chunks)
