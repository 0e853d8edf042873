"""An upstream answer's end-to-end headers kept as the bytes it sent: written back to the client as they came,
and turned into a `CIMultiDict` only if a filter reads them as a mapping (`Reply.headers`).

Usage (proxy.upstream.response builds one per answer; proxy.dataplane.respond renders it):
    raw = RawHeaders.of(pairs_from_llhttp)         # hop-by-hop, framing and outrider's own headers dropped
    raw.add(b"x-request-id", rid.encode())        # outrider's headers (proxy.dataplane.reply_headers)
    lines = raw.lines()                            # b"Server: x\r\nContent-Type: y\r\n..."

An answer that nobody reads as a mapping (the usual inference answer: `record` needs its Content-Type only)
costs no decoding, no multidict and no re-encoding: ~2 µs less per request (docs/dataplane.md).
"""

from __future__ import annotations

from multidict import CIMultiDict

from proxy.dataplane.headers import NOT_FORWARDED, PLAIN_CONNECTION, PROTECTED, connection_tokens

EDGE_OWNED = frozenset({b"x-request-id", b"x-outrider-variant", b"x-outrider-feedback-token"})
"""Headers the edge writes itself on every answer (proxy.dataplane.reply_headers): an upstream's copy is
replaced (the request id) or dropped (the variant when hidden, a feedback token, which only outrider
issues), so it is dropped as the head is read."""


class RawHeaders:
    """End-to-end header lines of one answer, as (name, value) bytes in their order."""

    __slots__ = ("chunked", "content_length", "content_type", "has_date", "keep_alive", "pairs")

    def __init__(
        self, pairs: list[tuple[bytes, bytes]], content_type: str = "", has_date: bool = False
    ) -> None:
        self.pairs = pairs
        self.content_type = content_type
        """The Content-Type's value ("" when absent)."""
        self.has_date = has_date
        """The upstream sent a Date (the edge adds one otherwise)."""
        # the framing the head announced (not forwarded: each leg has its own)
        self.content_length: int | None = None
        self.chunked = False
        self.keep_alive: bytes | None = None
        """The value of a `Keep-Alive` header, if sent (hop-by-hop: not forwarded, but read by the pool)."""

    @staticmethod
    def of(raw: list[tuple[bytes, bytes]]) -> RawHeaders:
        """The end-to-end part of an answer's header lines as llhttp gave them (names in any case):
        hop-by-hop and framing headers go (their framing facts are kept aside), so do those named in
        `Connection` (RFC 9110 §7.6.1) and those in `EDGE_OWNED`."""
        pairs: list[tuple[bytes, bytes]] = []
        named: list[str] = []
        content_type = ""
        has_date = chunked = False
        keep_alive: bytes | None = None
        length: int | None = None
        for name, value in raw:
            lower = name.lower()
            if lower in NOT_FORWARDED:
                if lower == b"connection":
                    named.append(value.decode("latin-1"))
                elif lower == b"content-length":
                    length = int(value)  # llhttp has refused anything but one valid number
                elif lower == b"transfer-encoding":
                    chunked = value.rstrip().lower().endswith(b"chunked")
                elif lower == b"keep-alive":
                    keep_alive = value
                continue
            if lower in EDGE_OWNED:
                continue
            if lower == b"content-type":
                content_type = value.decode("latin-1")
            elif lower == b"date":
                has_date = True
            pairs.append((name, value))
        if named and not PLAIN_CONNECTION.issuperset(v.strip().lower() for v in named):
            drop = connection_tokens(named) - PROTECTED - PLAIN_CONNECTION
            if drop:
                pairs = [(k, v) for k, v in pairs if k.decode("latin-1").lower() not in drop]
        made = RawHeaders(pairs, content_type, has_date)
        made.content_length = None if chunked else length
        made.chunked = chunked
        made.keep_alive = keep_alive
        return made

    def add(self, name: bytes, value: bytes) -> None:
        """Append one header line (outrider's own, after the upstream's)."""
        self.pairs.append((name, value))

    def lines(self) -> bytes:
        """The header lines, each ending in CRLF. ValueError if one would split the response (a CR or LF
        inside a name or value: llhttp refuses those from an upstream; this guards what outrider adds)."""
        lines = b"".join([name + b": " + value + b"\r\n" for name, value in self.pairs])
        count = len(self.pairs)
        if lines.count(b"\n") != count or lines.count(b"\r") != count:
            raise ValueError("CR or LF inside a response header")
        return lines

    def multidict(self) -> CIMultiDict[str]:
        """The headers as the filters read them (values' bytes survive the round trip to the client, as
        with aiohttp: UTF-8 with surrogateescape)."""
        return CIMultiDict(
            [(name.decode("latin-1"), value.decode("utf-8", "surrogateescape")) for name, value in self.pairs]
        )
