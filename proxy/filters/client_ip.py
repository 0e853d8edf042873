"""`client_ip`: set `ex.client`, the resolved client address (X-Forwarded-For believed from trusted proxies).

Usage: ClientIp(TrustedProxies(settings.conf.trusted_proxies)) — first in the chain, so rate limits and
forwarding see the same client.
"""

from __future__ import annotations

from proxy.dataplane.chain import Stage
from proxy.dataplane.client_ip import TrustedProxies, resolve_client, untrusted_client
from proxy.dataplane.exchange import Exchange, Reply


class ClientIp:
    """Resolves the client once per request; later filters read `ex.client`, never the raw header."""

    def __init__(self, trusted: TrustedProxies) -> None:
        self.trusted = trusted

    def enter(self, ex: Exchange) -> bool:
        """Set `ex.client` (always synchronous: the chain fuses it with its neighbours)."""
        inbound = ex.inbound
        if self.trusted.networks:
            forwarded = inbound.headers.getall("X-Forwarded-For", [])
            ex.client = resolve_client(inbound.peer, forwarded, self.trusted)
        else:  # the default: nobody's forwarding headers are read
            ex.client = untrusted_client(inbound.peer)
        return True

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        """Set `ex.client`, then continue."""
        self.enter(ex)
        return await call_next(ex)
