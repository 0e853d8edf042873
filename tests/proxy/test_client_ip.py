"""Client address resolution: golden walks, and properties showing an untrusted peer cannot pick its address.

Also what that means downstream: the rate-limit key and the X-Forwarded-For sent upstream.
"""

from __future__ import annotations

import ipaddress
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.dataplane.client_ip import ClientAddress, TrustedProxies, resolve_client
from proxy.dataplane.exchange import Exchange, Inbound, Reply
from proxy.filters.client_ip import ClientIp
from proxy.filters.forward import forwarded_headers
from proxy.filters.ratelimit import RateLimit
from proxy.ratelimit.settings import RateLimitSettings

TRUSTED = TrustedProxies(("10.0.0.0/8", "fd00::/8"))


@pytest.mark.parametrize(
    ("peer", "xff", "client", "peer_trusted"),
    [
        pytest.param("203.0.113.9", ["1.2.3.4"], "203.0.113.9", False, id="untrusted-peer-ignores-xff"),
        pytest.param("10.0.0.1", [], "10.0.0.1", True, id="trusted-peer-without-xff"),
        pytest.param("10.0.0.1", ["1.2.3.4"], "1.2.3.4", True, id="one-hop"),
        pytest.param("10.0.0.1", ["6.6.6.6, 1.2.3.4, 10.9.9.9"], "1.2.3.4", True, id="skips-trusted-hops"),
        pytest.param("10.0.0.1", ["6.6.6.6", "1.2.3.4"], "1.2.3.4", True, id="several-header-lines"),
        pytest.param("10.0.0.1", ["10.1.1.1, 10.2.2.2"], "10.1.1.1", True, id="all-trusted-leftmost"),
        pytest.param("10.0.0.1", ["1.2.3.4, garbage, 10.2.2.2"], "10.2.2.2", True, id="malformed-stops"),
        pytest.param("10.0.0.1", ["1.2.3.4:5555"], "10.0.0.1", True, id="port-is-malformed"),
        pytest.param("10.0.0.1", ["1.2.3.4,,"], "10.0.0.1", True, id="empty-entry-is-malformed"),
        pytest.param("fd00::1", ["2001:db8::7"], "2001:db8::7", True, id="ipv6"),
        pytest.param("::ffff:10.0.0.1", [" 1.2.3.4 "], "1.2.3.4", True, id="ipv4-mapped-peer"),
        pytest.param(None, ["1.2.3.4"], None, False, id="no-peer"),
        pytest.param("not-an-ip", ["1.2.3.4"], "not-an-ip", False, id="unix-socket-peer"),
    ],
)
def test_walk(peer: str | None, xff: list[str], client: str | None, peer_trusted: bool) -> None:
    assert resolve_client(peer, xff, TRUSTED) == ClientAddress(client, peer_trusted)


def test_nobody_is_trusted_by_default() -> None:
    assert not TrustedProxies()
    assert resolve_client("127.0.0.1", ["1.2.3.4"], TrustedProxies()) == ClientAddress("127.0.0.1")


def test_bad_cidr_is_refused() -> None:
    with pytest.raises(ValueError, match="not a CIDR"):
        TrustedProxies(("10.0.0.0/33",))


ipv4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
untrusted_v4 = ipv4.filter(lambda a: not a.startswith("10."))
xff_entry = st.one_of(ipv4, st.text(max_size=12), st.just("10.0.0.7"))


@given(peer=untrusted_v4, xff=st.lists(st.lists(xff_entry, max_size=6).map(", ".join), max_size=3))
def test_an_untrusted_peer_never_chooses_its_address(peer: str, xff: list[str]) -> None:
    resolved = resolve_client(peer, xff, TRUSTED)
    assert resolved == ClientAddress(peer, peer_trusted=False)
    headers = forwarded_headers(exchange(peer, xff, resolved))
    assert headers.getall("X-Forwarded-For") == [peer]


@given(
    forged=st.lists(xff_entry, max_size=6),
    client=untrusted_v4,
    hops=st.lists(st.sampled_from(["10.0.0.2", "10.200.0.9"]), max_size=3),
)
def test_whatever_the_client_writes_left_of_itself_changes_nothing(
    forged: list[str], client: str, hops: list[str]
) -> None:
    """The trusted hops vouch for `client`; entries the client forged further left are never reached."""
    chain = ", ".join([*forged, client, *hops])
    assert resolve_client("10.0.0.1", [chain], TRUSTED) == ClientAddress(client, peer_trusted=True)


def exchange(peer: str | None, xff: list[str], client: ClientAddress | None = None) -> Exchange:
    headers: CIMultiDict[str] = CIMultiDict()
    for value in xff:
        headers.add("X-Forwarded-For", value)
    headers.update({"X-Forwarded-Proto": "https", "Forwarded": "for=1.2.3.4", "X-Real-IP": "1.2.3.4"})
    inbound = Inbound("GET", "/v2/x", CIMultiDictProxy(headers), b"", peer, time.time(), 0.0, "r")
    return Exchange(inbound, client=client)


async def terminal(ex: Exchange) -> Reply:
    return Reply(200, CIMultiDict(), b"")


async def test_filter_sets_the_client_for_the_rest_of_the_chain() -> None:
    ex = exchange("10.0.0.1", ["1.2.3.4"])
    await ClientIp(TRUSTED)(ex, terminal)
    assert ex.client == ClientAddress("1.2.3.4", peer_trusted=True)


async def test_rate_limit_keys_on_the_resolved_client() -> None:
    limit, clip = RateLimit(RateLimitSettings(1, 1)), ClientIp(TRUSTED)

    async def key(peer: str, xff: list[str]) -> str:
        ex = exchange(peer, xff)
        await clip(ex, terminal)
        return limit.key_of(ex)

    assert (
        await key("203.0.113.9", ["1.1.1.1"]) == await key("203.0.113.9", ["2.2.2.2"]) == "client:203.0.113.9"
    )
    assert await key("10.0.0.1", ["1.1.1.1"]) == "client:1.1.1.1"
    assert limit.key_of(exchange("203.0.113.9", ["1.1.1.1"])) == "client:203.0.113.9"  # filter absent


def test_untrusted_peer_forwarding_headers_are_replaced() -> None:
    headers = forwarded_headers(exchange("203.0.113.9", ["1.2.3.4"], ClientAddress("203.0.113.9")))
    assert headers.getall("X-Forwarded-For") == ["203.0.113.9"]
    assert headers["X-Forwarded-Proto"] == "http"
    assert "Forwarded" not in headers
    assert "X-Real-IP" not in headers


def test_without_a_resolved_client_nothing_forwarded_is_believed() -> None:
    headers = forwarded_headers(exchange("10.0.0.1", ["1.2.3.4"]))
    assert headers.getall("X-Forwarded-For") == ["10.0.0.1"]


def test_trusted_peer_chain_is_extended() -> None:
    client = ClientAddress("1.2.3.4", peer_trusted=True)
    headers = forwarded_headers(exchange("10.0.0.1", ["9.9.9.9, 1.2.3.4", "10.0.0.5"], client))
    assert headers.getall("X-Forwarded-For") == ["9.9.9.9, 1.2.3.4, 10.0.0.5, 10.0.0.1"]
    assert headers["X-Forwarded-Proto"] == "https"
    assert headers["Forwarded"] == "for=1.2.3.4"
