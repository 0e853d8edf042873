"""Who the client is: the TCP peer, unless the peer is a configured proxy whose X-Forwarded-For we believe.

Usage: client = resolve_client(peer, headers.getall("X-Forwarded-For", []), TrustedProxies(("10.0.0.0/8",)))

X-Forwarded-For is read right to left (docs/reliability.md, "Spoofing"): each trusted hop vouches for the
entry to its left, so the walk skips trusted addresses and stops at the first untrusted one — the client.
Anything left of that was written by the client and proves nothing. A malformed entry stops the walk: the
last trusted hop is then the best-known client. An untrusted peer can never choose its own address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4096)  # every request parses its peer (and forwarding hops): the same few addresses
def parse_ip(text: str) -> IPAddress | None:
    """A bare IPv4/IPv6 address (IPv4-mapped IPv6 folded to IPv4), or None when `text` is not one."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The CIDRs whose forwarding headers are believed; empty (the default) trusts nobody."""

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        networks: list[IPNetwork] = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as err:
                raise ValueError(f"trusted proxy {cidr!r} is not a CIDR: {err}") from None
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: IPAddress) -> bool:
        """True when `address` lies in one of the trusted networks."""
        if not self.networks:  # the default, on every request: no generator to build
            return False
        return any(address.version == net.version and address in net for net in self.networks)


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """The resolved client, and whether the TCP peer is a trusted proxy (so its chain may be extended)."""

    address: str | None
    """The client's IP address as text; None when the peer has no IP (a Unix socket)."""
    peer_trusted: bool = False


@lru_cache(maxsize=4096)
def untrusted_client(peer: str | None) -> ClientAddress:
    """The client that is its TCP peer (its address in canonical form): the same few peers every request."""
    peer_ip = parse_ip(peer) if peer else None
    return ClientAddress(str(peer_ip) if peer_ip is not None else peer)


def resolve_client(peer: str | None, forwarded_for: Iterable[str], trusted: TrustedProxies) -> ClientAddress:
    """The client behind `peer`; `forwarded_for` (the header's values) is read only if `peer` is trusted."""
    if not trusted.networks:  # the default
        return untrusted_client(peer)
    peer_ip = parse_ip(peer) if peer else None
    if peer_ip is None or not trusted.trusts(peer_ip):
        return untrusted_client(peer)
    last_trusted = peer_ip
    for entry in reversed([e for value in forwarded_for for e in value.split(",")]):
        hop = parse_ip(entry)
        if hop is None:
            break
        if not trusted.trusts(hop):
            return ClientAddress(str(hop), peer_trusted=True)
        last_trusted = hop
    return ClientAddress(str(last_trusted), peer_trusted=True)
