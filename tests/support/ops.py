"""An experiment that exercises every operational metric, and the traffic that makes it decide quickly.

One echo upstream serves both arms: the candidate's upstream URL ends in `/status/500`, so the candidate
answers 500 to everything and the controller rolls it back after ~1,000 requests; a shadow mirrors a fifth of
the traffic, so shadow counters and agreement exist; requests through a `/reset/` path make outrider answer
502.
Usage: proxy = outrider(ops_yaml(upstream.url)); state = await drive_until_decided(proxy, "ops")"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import aiohttp

from experiments.builder import Analysis, Compare, Guardrail, Shadow, Variant
from tests.integration.conftest import canary_doc
from tests.support.procs import Proc

MIRROR = Shadow(sample=0.2, timeout="1s", compare=Compare("json-exact"))
ANALYSIS = Analysis((Guardrail("error_rate", 1.2),), interval="100ms")
INFER = "/v2/models/m/infer"
"""A path the shadow mirrors (POST .../infer)."""


def ops_yaml(upstream: str, name: str = "ops") -> str:
    """The experiment file: 50% canary on a candidate that always answers 500, a shadow, fast looks."""
    doc = canary_doc(
        upstream,
        f"{upstream}/status/500",
        name=name,
        steps=(50,),
        salt=name,
        shadow=MIRROR,
        analysis=ANALYSIS,
    )
    return doc.adding(Variant.shadow(upstream, "mirror")).yaml()


async def state_of(session: aiohttp.ClientSession, proxy: Proc, name: str) -> dict[str, Any]:
    """GET /experiments/{name}."""
    async with session.get(f"{proxy.admin_url}/experiments/{name}") as resp:
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
        return doc


async def drive_until_decided(proxy: Proc, name: str, seconds: float = 30.0) -> dict[str, Any]:
    """POST batches of 100 requests (distinct users) until `name` leaves `progressing`; its state document."""
    users = itertools.count()
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            headers = {"x-user-id": f"u{next(users)}", "content-type": "application/json"}
            async with session.post(f"{proxy.url}{INFER}", data=b'{"x": 1}', headers=headers) as resp:
                await resp.read()

        while time.monotonic() < deadline:
            await asyncio.gather(*(one() for _ in range(100)))
            doc = await state_of(session, proxy, name)
            if doc["phase"] != "progressing":
                return doc
    raise AssertionError(f"{name} still progressing after {seconds}s")


async def upstream_resets(proxy: Proc, n: int = 5) -> list[int]:
    """Statuses of `n` requests whose upstream resets the connection (502 from outrider)."""
    async with aiohttp.ClientSession() as session:
        out = []
        for i in range(n):
            headers = {"x-user-id": f"reset-{i}"}
            async with session.post(f"{proxy.url}/v2/reset/x", data=b"{}", headers=headers) as resp:
                out.append(resp.status)
        return out
