"""Hop-by-hop header removal (RFC 9110 §7.6.1), applied in both directions.

Usage: clean = end_to_end(request.headers)
Besides the fixed list, every header *named* in `Connection` goes too — except the ones a client must not be
able to strip that way (docs/reliability.md: `Authorization`, `X-Forwarded-For`, ...): those stay.
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Naming these in `Connection` must not make them disappear (a client could drop auth or forwarding info).
PROTECTED = frozenset(
    {
        "authorization",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "forwarded",
        "x-request-id",
    }
)

# Framing is outrider's job on each leg; these are recomputed by the HTTP library.
FRAMING = frozenset({"content-length"})

NOT_FORWARDED = frozenset(name.encode() for name in HOP_BY_HOP | FRAMING)
"""The two sets above as the lower-case bytes llhttp hands over (the data plane's parsers)."""
PLAIN_CONNECTION = frozenset({"close", "keep-alive"})
"""`Connection` values that name no header to strip (the usual ones)."""


def connection_tokens(values: Iterable[str]) -> set[str]:
    """Lower-cased header names listed in the `Connection` header values."""
    names: set[str] = set()
    for value in values:
        for token in value.split(","):
            token = token.strip().lower()
            if token:
                names.add(token)
    return names


def end_to_end(
    headers: CIMultiDictProxy[str] | CIMultiDict[str], *, drop: frozenset[str] = frozenset()
) -> CIMultiDict[str]:
    """A copy of `headers` without hop-by-hop headers, framing headers and any name in `drop`."""
    named = connection_tokens(headers.getall("connection", ())) - PROTECTED
    remove = HOP_BY_HOP | FRAMING | named | drop
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        if key.lower() not in remove:
            out.add(key, value)
    return out


def keep_alive_timeout(value: str) -> float | None:
    """`timeout=N` of a `Keep-Alive` header (how long the upstream keeps an idle connection), if any."""
    for part in value.split(","):
        name, _, number = part.partition("=")
        if name.strip().lower() == "timeout":
            try:
                return float(number.strip())
            except ValueError:
                return None
    return None
