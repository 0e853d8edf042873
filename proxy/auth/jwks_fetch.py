"""Verification keys fetched from a JWKS URL with aiohttp: cached, refreshed single-flight, never blocking.

Usage: keys = JwksKeys(url, ("RS256",)); await keys.start(); entry = await keys.find(kid); await keys.close()

docs/reliability.md: cache 300 s, refresh cooldown 30 s, fetch timeout 2 s (PyJWT's `PyJWKClient` would block
the loop on urllib). Expired keys are refreshed in the background while the old ones keep answering, and
stay in use for as long as refreshes fail. A token with an unknown `kid` waits for at most one fetch per
cooldown, shared by every request that asks meanwhile, so a flood of made-up kids costs the issuer one
request per 30 s. A document that is too large, unparsable or refused by `KeySet.from_jwks` (the HS/RS
family rule) is counted and changes nothing. Redirects are never followed: a 3xx is a failed fetch
(`redirect`), because the keys must come from the URL the operator configured, not from wherever that URL
points today (an open redirect on the issuer's host would otherwise let anyone choose the keys that sign
tokens).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
import orjson

from plumbing.http_client import TooLarge, http_session, read_capped
from proxy.auth.jwt_keys import KeyEntry, KeySet
from proxy.runtime.tasks import TaskGroup
from proxy.telemetry.logs import event

CACHE_S = 300.0
COOLDOWN_S = 30.0
TIMEOUT_S = 2.0
MAX_JWKS_BYTES = 1024 * 1024
FETCH_RESULTS = ("ok", "timeout", "error", "too_large", "invalid", "redirect")
"""Labels of `outrider_jwks_fetch_total{result}`."""


class FetchFailed(Exception):
    """A fetch that produced no usable key set; `result` is its label in `fetches`."""

    def __init__(self, result: str, detail: str) -> None:
        super().__init__(detail)
        self.result = result


class JwksKeys:
    """The key source behind `--auth-jwks-url`; owns its client session (`start()` … `close()`)."""

    def __init__(
        self,
        url: str,
        algorithms: Iterable[str],
        *,
        cache_s: float = CACHE_S,
        cooldown_s: float = COOLDOWN_S,
        timeout_s: float = TIMEOUT_S,
        max_bytes: int = MAX_JWKS_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.algorithms = tuple(algorithms)
        self.cache_s, self.cooldown_s, self.timeout_s = cache_s, cooldown_s, timeout_s
        self.max_bytes = max_bytes
        self.clock = clock
        self.keys = KeySet()
        """The last good key set (empty until a fetch succeeds)."""
        self.fetches = dict.fromkeys(FETCH_RESULTS, 0)
        """Fetch attempts by result."""
        self._fetched_at: float | None = None  # last success
        self._attempted_at: float | None = None  # last start of a fetch, whatever came of it
        self._inflight: asyncio.Task[Any] | None = None
        self._tasks = TaskGroup()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the session and fetch once; on failure tokens get 401 until a later fetch succeeds."""
        self._session = http_session(timeout_s=self.timeout_s)
        await self._refresh()

    async def close(self) -> None:
        """Let a fetch in flight finish (bounded by its timeout), then close the session."""
        await self._tasks.drain(timeout=self.timeout_s)
        if self._session is not None:
            await self._session.close()

    def peek(self, kid: str | None) -> KeyEntry | None:
        """The cached key for `kid`, without a coroutine; None when `find` has more to do (the cache is due
        for a refresh)."""
        now = self.clock()
        if self._may_fetch(now) and (self._fetched_at is None or now - self._fetched_at >= self.cache_s):
            return None
        return self.keys.find(kid)

    async def find(self, kid: str | None) -> KeyEntry | None:
        """The key for `kid`; an unknown one waits for a fetch only if the cooldown allows one."""
        now = self.clock()
        if self._may_fetch(now) and (self._fetched_at is None or now - self._fetched_at >= self.cache_s):
            self._refresh()  # in the background: the cached keys answer this request
        entry = self.keys.find(kid)
        if entry is not None:
            return entry
        if self._inflight is None and not self._may_fetch(now):
            return None
        # Shielded: a client that gives up must not cancel the fetch other requests are waiting for.
        await asyncio.shield(self._refresh())
        return self.keys.find(kid)

    def _may_fetch(self, now: float) -> bool:
        return self._inflight is None and (
            self._attempted_at is None or now - self._attempted_at >= self.cooldown_s
        )

    def _refresh(self) -> asyncio.Task[Any]:
        """The fetch in flight, or a new one."""
        if self._inflight is None:
            self._attempted_at = self.clock()
            self._inflight = self._tasks.spawn(self._fetch_and_swap(), name="jwks-fetch")
        return self._inflight

    async def _fetch_and_swap(self) -> bool:
        try:
            keys = await self._fetch()
        except FetchFailed as failed:
            self.fetches[failed.result] += 1
            event(
                "jwks fetch failed",
                level=logging.WARNING,
                url=self.url,
                result=failed.result,
                detail=str(failed),
                keeping=len(self.keys.by_kid) + (self.keys.default is not None),
            )
            return False
        finally:
            self._inflight = None
        self.keys, self._fetched_at = keys, self.clock()
        self.fetches["ok"] += 1
        return True

    async def _fetch(self) -> KeySet:
        if self._session is None or self._session.closed:
            raise FetchFailed("error", "not started, or already closed")
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self._session.get(self.url, allow_redirects=False) as resp,
            ):
                if 300 <= resp.status < 400:
                    where = resp.headers.get("Location", "")[:200]
                    raise FetchFailed("redirect", f"HTTP {resp.status} to {where!r}: not followed")
                if resp.status != 200:
                    raise FetchFailed("error", f"HTTP {resp.status}")
                body = await read_capped(resp, self.max_bytes)
        except TooLarge as err:
            raise FetchFailed("too_large", f"JWKS {err}") from None
        except TimeoutError:
            raise FetchFailed("timeout", f"no JWKS within {self.timeout_s:g} s") from None
        except aiohttp.ClientError as err:
            raise FetchFailed("error", f"{type(err).__name__}: {err}") from None
        # Building keys costs CPU per key (RSA/EC math): off the loop, since the document is not ours.
        return await asyncio.to_thread(parse_jwks, body, self.algorithms)


def parse_jwks(body: bytes, algorithms: tuple[str, ...]) -> KeySet:
    """The key set of a JWKS document; FetchFailed("invalid") for anything `KeySet.from_jwks` refuses."""
    try:
        return KeySet.from_jwks(orjson.loads(body), algorithms)
    except Exception as err:  # the document is untrusted input: whatever breaks, the old keys stay
        raise FetchFailed("invalid", str(err)[:200]) from None
