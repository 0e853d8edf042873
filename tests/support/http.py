"""HTTP helpers for tests: a bounded concurrent request loop, a /metrics reader, an in-process server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import aiohttp
from aiohttp import web

T = TypeVar("T")
U = TypeVar("U")


async def bounded_map(items: Sequence[T], fn: Callable[[T], Awaitable[U]], concurrency: int = 32) -> list[U]:
    """`fn` over every item with at most `concurrency` in flight; results in input order."""
    results: list[U | None] = [None] * len(items)
    index = iter(range(len(items)))

    async def worker() -> None:
        for i in index:
            results[i] = await fn(items[i])

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [r for r in results if r is not None]


async def scrape(session: aiohttp.ClientSession, admin_url: str) -> dict[str, float]:
    """Every sample of /metrics as {'name{labels}': value}."""
    async with session.get(f"{admin_url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def outcome_invariant(samples: dict[str, float]) -> tuple[float, float, float, float]:
    """(produced, stored, pending, dropped) from a scrape."""
    dropped = sum(v for k, v in samples.items() if k.startswith("outrider_outcomes_dropped_total"))
    return (
        samples["outrider_outcomes_produced_total"],
        samples["outrider_outcomes_stored_total"],
        samples["outrider_outcomes_pending"],
        dropped,
    )


@contextlib.asynccontextmanager
async def generating_server(app: web.Application) -> AsyncIterator[int]:
    """`app` on an ephemeral 127.0.0.1 port in this process (yields the port), its handlers cancelled as soon
    as their client closes the connection, as a real generating model server's work would be."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
