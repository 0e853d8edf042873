"""A request's end-to-end headers as the bytes the client sent, read by name without building a mapping.

Usage (proxy.dataplane.head builds one per request):
    headers = RequestHeaders(pairs, lowered)       # pairs: (name, value) bytes as sent; lowered: their names
    headers.get("x-user-id")                       # "u1" (the first value), or None
    headers.getall("Authorization", [])            # every value, in order
    for name, value in headers.items(): ...        # decoded, in order (what a mapping copy iterates)

Filters read one or two headers per request (the unit key, a pin, the bearer token): a scan of the few pairs
costs less than a `CIMultiDict` built for every request, and the forwarder writes the pairs back as they
came (proxy.filters.forward.request_head) with no decoding and encoding in between. Values are decoded as
aiohttp decodes them (UTF-8 with surrogateescape), so their bytes survive the round trip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeAlias, overload

from multidict import CIMultiDictProxy


class RequestHeaders:
    """Read-only, case-insensitive, multi-valued: the part of a mapping's interface the filters use."""

    __slots__ = ("lowered", "pairs")

    def __init__(self, pairs: list[tuple[bytes, bytes]], lowered: list[bytes]) -> None:
        self.pairs = pairs
        """(name, value) as sent, hop-by-hop and control headers already removed."""
        self.lowered = lowered
        """`pairs`' names in lower case, in the same order."""

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name` (any case), else `default`."""
        key = name.lower().encode("latin-1", "replace")
        lowered = self.lowered
        for i in range(len(lowered)):
            if lowered[i] == key:
                return self.pairs[i][1].decode("utf-8", "surrogateescape")
        return default

    def __getitem__(self, name: str) -> str:
        """The first value of `name`; KeyError without one."""
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def getall(self, name: str, default: list[str]) -> list[str]:
        """Every value of `name` (any case), in order, else `default`."""
        key = name.lower().encode("latin-1", "replace")
        found = [
            self.pairs[i][1].decode("utf-8", "surrogateescape")
            for i in range(len(self.lowered))
            if self.lowered[i] == key
        ]
        return found or default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower().encode("latin-1", "replace") in self.lowered

    def __len__(self) -> int:
        return len(self.pairs)

    def items(self) -> list[tuple[str, str]]:
        """(name, value) pairs decoded, in order (names as sent)."""
        return [(n.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for n, v in self.pairs]

    def keys(self) -> list[str]:
        """The names as sent, in order (repeated names repeated)."""
        return [n.decode("latin-1") for n, _ in self.pairs]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())


HeaderView: TypeAlias = "CIMultiDictProxy[str] | RequestHeaders"
"""A request's headers: the native plane's `RequestHeaders`, or a mapping (aiohttp plane, gRPC metadata)."""
