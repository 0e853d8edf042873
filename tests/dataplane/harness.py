"""The native data plane in-process, on uvloop as in production, over real 127.0.0.1 sockets.

Usage: run(scenario, header_timeout_s=0.5)  — `scenario(served)` gets a plane whose chain is `head_filters`,
the `body` stage, then `terminal` (by default: answer the body's length).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from multidict import CIMultiDict

from proxy.dataplane.body import ReadBody
from proxy.dataplane.chain import Filter, Stage, build_chain
from proxy.dataplane.client_ip import TrustedProxies
from proxy.dataplane.exchange import Exchange, Reply
from proxy.dataplane.limits import PlaneLimits
from proxy.dataplane.plane import DataPlane
from proxy.runtime import loop
from proxy.telemetry.metrics import Metrics

TIMEOUT = 0.5  # header timeout (and body grace) of these tests
SLACK = 0.3
REQUEST = b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n"


async def echo_length(ex: Exchange) -> Reply:
    """Answer the length of the body the chain saw."""
    return Reply(200, CIMultiDict(), str(len(ex.inbound.body)).encode())


@dataclass
class Served:
    """A data plane in this process."""

    address: str
    plane: DataPlane
    metrics: Metrics
    seen: list[Exchange] = field(default_factory=list)

    def sample(self, name: str, **labels: str) -> float:
        """A metric's current value (0 when absent)."""
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@asynccontextmanager
async def serving(
    terminal: Stage = echo_length,
    head_filters: Sequence[Filter] = (),
    trusted: Sequence[str] = (),
    **limits: Any,
) -> AsyncIterator[Served]:
    """A plane on an ephemeral port; shut down (1 s drain) at the end."""
    metrics = Metrics()
    settings = PlaneLimits(**{"header_timeout_s": TIMEOUT, "keepalive_s": 5.0, **limits})
    seen: list[Exchange] = []

    async def recording(ex: Exchange) -> Reply:
        seen.append(ex)
        return await terminal(ex)

    chain = build_chain([*head_filters, ReadBody(settings.max_body_bytes)], recording)
    plane = DataPlane(chain, chain, metrics, settings, TrustedProxies(trusted))
    await plane.start("127.0.0.1", 0)
    try:
        yield Served(plane.address, plane, metrics, seen)
    finally:
        await plane.shutdown(1.0)


def run(scenario: Callable[[Served], Awaitable[None]], **options: Any) -> None:
    """Run `scenario` against a fresh plane on uvloop."""

    async def main() -> None:
        async with serving(**options) as served:
            await scenario(served)

    loop.run(main())


async def connect(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection."""
    host, port = address.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length: (status, lower-cased headers, body)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (whatever it sends first)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


async def until(condition: Callable[[], bool], seconds: float = 2.0) -> bool:
    """Poll `condition` (the server notices closes on its next loop turn)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()
