"""X-Forwarded-For in a real outrider: believed only from `--trusted-proxies`, read right to left.

The test client connects from 127.0.0.1 (untrusted) and, through a socket bound to 127.0.0.2, as the one
trusted proxy. The echo upstream shows what was forwarded; a per-client rate limit shows who outrider
thinks the client is.
"""

from __future__ import annotations

import aiohttp
import orjson

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.procs import Proc

TRUSTED_PROXY = "127.0.0.2"


async def send(session: aiohttp.ClientSession, url: str, xff: str) -> tuple[int, str | None]:
    """(status, the X-Forwarded-For the upstream received)."""
    async with session.post(url, data=b"{}", headers={"X-Forwarded-For": xff, "x-user-id": "u"}) as r:
        if r.status != 200:
            return r.status, None
        received = {k.lower(): v for k, v in orjson.loads(await r.read())["headers"]}
        return r.status, received.get("x-forwarded-for")


async def test_forwarded_for_is_trusted_only_from_configured_proxies(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory
) -> None:
    stable, candidate = upstreams
    proxy = outrider(
        canary_yaml(stable.url, candidate.url),
        args=("--trusted-proxies", f"{TRUSTED_PROXY}/32", "--rate-limit", "0.1", "--rate-burst", "3"),
    )
    url = f"{proxy.url}/v2/models/m/infer"
    via_proxy = aiohttp.TCPConnector(local_addr=(TRUSTED_PROXY, 0))
    async with aiohttp.ClientSession() as direct, aiohttp.ClientSession(connector=via_proxy) as trusted:
        # An untrusted peer's header is replaced by the peer itself, and a new spoofed address per request
        # does not buy a new budget: 3 (the burst) pass, then 429.
        spoofed = [await send(direct, url, f"198.51.100.{i}") for i in range(6)]
        assert spoofed[:3] == [(200, "127.0.0.1")] * 3
        assert [status for status, _ in spoofed[3:]] == [429] * 3

        # From the trusted proxy the chain is extended, and the client it vouches for has its own budget.
        alice = [await send(trusted, url, "203.0.113.5") for _ in range(3)]
        assert alice == [(200, f"203.0.113.5, {TRUSTED_PROXY}")] * 3
        # Read right to left: what alice writes to the left of her own address is ignored.
        assert (await send(trusted, url, "6.6.6.6, 203.0.113.5"))[0] == 429
        assert await send(trusted, url, "203.0.113.6") == (200, f"203.0.113.6, {TRUSTED_PROXY}")
