"""A request's head as the parser delivered it (method, target, raw header pairs, version) → what the filter
chain reads: the method, the path with its query, and the end-to-end headers as sent (`RequestHeaders`:
read by name, no mapping built).

Usage: head = parse_head(b"POST", b"/v2/m/infer", [(b"Host", b"m"), ...], "1.1")  (OutriderError if refused)

llhttp (under httptools) already refuses most smuggling vectors (Content-Length with Transfer-Encoding, bad
chunk sizes, obs-fold, bare CR/LF, bad tokens); this adds what it lets through and RFC 9112 still forbids:
versions other than 1.0/1.1 (505), Transfer-Encoding on HTTP/1.0, any Transfer-Encoding that is not exactly
`chunked` or comes with a Content-Length, a missing or repeated Host, and repeated singleton headers
(as aiohttp's parser does, so both data planes refuse the same requests).
"""

from __future__ import annotations

from typing import Any, Final

import httptools

from proxy.dataplane.edge import CONTROL_PREFIX
from proxy.dataplane.errors import BadFraming, BadRequest, VersionNotSupported
from proxy.dataplane.headers import NOT_FORWARDED, PLAIN_CONNECTION, PROTECTED, connection_tokens
from proxy.dataplane.reply_headers import REQUEST_ID
from proxy.dataplane.request_headers import RequestHeaders

# RFC 9110 fields that may appear once (aiohttp's list): two different values are two different requests.
SINGLETONS = frozenset(
    {
        b"content-length",
        b"content-location",
        b"content-range",
        b"content-type",
        b"etag",
        b"host",
        b"max-forwards",
        b"server",
        b"transfer-encoding",
        b"user-agent",
    }
)
_CONTROL = CONTROL_PREFIX.encode()
_REQUEST_ID = REQUEST_ID.encode()
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")}


class Head:
    """One request's head, checked (read-only; a plain class: proxy.dataplane.exchange says why)."""

    __slots__ = ("chunked", "expect_continue", "has_request_id", "headers", "length", "method", "path")

    def __init__(
        self,
        method: str,
        path: str,
        headers: RequestHeaders,
        length: int | None,
        chunked: bool,
        expect_continue: bool,
        has_request_id: bool,
    ) -> None:
        self.method: Final = method
        self.path: Final = path
        """Path and query as sent (origin form; the path of an absolute-form target)."""
        self.headers: Final = headers
        """End-to-end headers: hop-by-hop ones, those named in Connection, client `x-outrider-*` removed."""
        self.length: Final = length
        """Content-Length, if sent."""
        self.chunked: Final = chunked
        self.expect_continue: Final = expect_continue
        """The client waits for `100 Continue` before it sends the body."""
        self.has_request_id: Final = has_request_id
        """The client sent an x-request-id (still to be checked for sanity)."""


def parse_head(method: bytes, target: bytes, raw: list[tuple[bytes, bytes]], version: str) -> Head:
    """Check and convert one head; BadRequest, BadFraming or VersionNotSupported when it must be refused."""
    if version != "1.1" and version != "1.0":
        raise VersionNotSupported(f"HTTP/{version} is not supported here")
    seen: set[bytes] = set()
    pairs: list[tuple[bytes, bytes]] = []
    lowered: list[bytes] = []
    length: int | None = None
    encoding: bytes | None = None
    connection: list[str] = []
    expect = has_rid = False
    for name, value in raw:
        lname = name.lower()
        if lname in SINGLETONS:
            if lname in seen:
                raise BadRequest(f"more than one {name.decode('latin-1')} header")
            seen.add(lname)
        value = value.rstrip(b" \t")  # llhttp strips the whitespace before a value, not after it
        if lname in NOT_FORWARDED:
            if lname == b"content-length":
                length = int(value)  # llhttp accepts digits only
            elif lname == b"transfer-encoding":
                encoding = value
            elif lname == b"connection":
                connection.append(value.decode("latin-1"))
            continue
        if lname.startswith(_CONTROL):
            continue
        if lname == b"expect":
            expect = value.lower() == b"100-continue"
        elif lname == _REQUEST_ID:
            has_rid = True
        pairs.append((name, value))
        lowered.append(lname)
    if encoding is not None:
        check_transfer_encoding(encoding, version, length)
    if version == "1.1" and b"host" not in seen:
        raise BadRequest("an HTTP/1.1 request needs a Host header")
    if connection:
        named = {n.encode("latin-1") for n in connection_tokens(connection) - PROTECTED - PLAIN_CONNECTION}
        if named:
            kept = [i for i in range(len(pairs)) if lowered[i] not in named]
            pairs, lowered = [pairs[i] for i in kept], [lowered[i] for i in kept]
    return Head(
        _METHODS.get(method) or method.decode("ascii"),
        request_path(target),
        RequestHeaders(pairs, lowered),
        length,
        encoding is not None,
        expect and version == "1.1",
        has_rid,
    )


def check_transfer_encoding(value: bytes, version: str, length: int | None) -> None:
    """RFC 9112 §6.1: only `chunked`, never beside Content-Length, never on HTTP/1.0."""
    if version == "1.0":
        raise BadFraming("Transfer-Encoding in an HTTP/1.0 request")
    if length is not None:
        raise BadFraming("Transfer-Encoding together with Content-Length")
    if value.lower() != b"chunked":
        raise BadFraming("Transfer-Encoding other than chunked")


def request_path(target: bytes) -> str:
    """The path and query of a request target: origin form as sent, absolute form reduced to its path."""
    if target[:1] != b"/":
        if not target[:8].lower().startswith((b"http://", b"https://")):
            raise BadRequest("the request target must be a path or an absolute http(s) URL")
        # Any: an absent part is None, not the bytes of httptools' stubs (compiled code checks stub types)
        url: Any = httptools.parse_url(target)
        target = (url.path or b"/") + (b"?" + url.query if url.query else b"")
    return target.decode("utf-8", "surrogateescape")
