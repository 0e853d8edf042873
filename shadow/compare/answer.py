"""An answer as the comparators receive it: the body as it came over the wire, and the headers that say how to
read it.

Usage:
    answer = Answer.of(body, response_headers, max_bytes=spec.max_body_bytes)
    body = decoded(answer, "shadow")              # Content-Encoding undone (gzip, deflate), bounded
    json_part, tensors = split_binary(answer, body, "shadow")  # the OIP binary tensor extension

Bodies come from upstreams we do not control: decompression stops one byte past `max_bytes` (a gzip bomb
costs at most that much work and memory), and every malformed framing raises `NotComparable` with the reason,
which becomes the `compare_error` of the outcome record.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_MAX_BYTES = 1024 * 1024
"""The default shadow body cap (`spec.shadow.maxBodyBytes`)."""
CONTENT_ENCODING = "content-encoding"
BINARY_HEADER = "inference-header-content-length"
"""OIP binary tensor extension: the length of the JSON part; the tensors' raw bytes follow it."""
READ_HEADERS = (CONTENT_ENCODING, BINARY_HEADER)
"""The only headers a comparator reads (lower case)."""
MAX_CODINGS = 2
"""More content codings stacked on one answer than any server sends."""
_GZIP = zlib.MAX_WBITS | 16
_ZLIB = zlib.MAX_WBITS
_RAW = -zlib.MAX_WBITS
_IDENTITY = frozenset({"", "identity"})


class NotComparable(Exception):
    """The two answers cannot be compared; the message says why (it becomes the `compare_error` field)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer to compare: its body as received and the headers that say how to read it."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response headers; names are matched without regard to case (stored in lower case)."""
    max_bytes: int = DEFAULT_MAX_BYTES
    """The most bytes the body may decompress to (the experiment's shadow body cap)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", {name.lower(): value for name, value in self.headers.items()})

    @classmethod
    def of(cls, body: bytes, headers: Mapping[str, str] | None, max_bytes: int = DEFAULT_MAX_BYTES) -> Answer:
        """The answer with only the headers comparators read (a small object to pickle to the pool)."""
        return cls(body, answer_headers(headers), max_bytes)

    def header(self, name: str) -> str | None:
        """The value of header `name` (lower case), or None."""
        return self.headers.get(name)

    @property
    def encoded(self) -> bool:
        """Whether the body has a content coding to undo (its decoded size is then unknown until decoded)."""
        return any(coding not in _IDENTITY for coding in _codings(self))


def answer_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers of `headers` that comparators read, by lower-case name (any mapping, case-insensitive)."""
    if not headers:
        return {}
    return {name.lower(): value for name, value in headers.items() if name.lower() in READ_HEADERS}


def as_answer(answer: Answer | bytes) -> Answer:
    """A bare body is an answer without headers."""
    return answer if isinstance(answer, Answer) else Answer(answer)


def decoded(answer: Answer, who: str) -> bytes:
    """The body with its Content-Encoding undone (gzip, x-gzip, deflate; identity is nothing to undo).

    Raises NotComparable for another coding, a corrupt or truncated stream, or one that decodes to more
    than `answer.max_bytes`."""
    codings = [coding for coding in _codings(answer) if coding not in _IDENTITY]
    if len(codings) > MAX_CODINGS:
        raise NotComparable(f"{who} answer has {len(codings)} content codings stacked: not read")
    body = answer.body
    for coding in reversed(codings):  # the last coding listed was applied last
        if coding in ("gzip", "x-gzip"):
            body = _inflate(body, _GZIP, answer.max_bytes, f"{who} answer's gzip body")
        elif coding == "deflate":
            body = _deflate(body, answer.max_bytes, f"{who} answer's deflate body")
        else:
            raise NotComparable(
                f"{who} answer has Content-Encoding {coding[:40]!r}: only gzip and deflate are read"
            )
    return body


def split_binary(answer: Answer, body: bytes, who: str) -> tuple[bytes, memoryview | None]:
    """(JSON part, binary tensor data) of a decoded body; the data is None without the binary extension."""
    raw = answer.header(BINARY_HEADER)
    if raw is None:
        return body, None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()):
        raise NotComparable(
            f"{who} answer's Inference-Header-Content-Length is not a byte count: {raw[:40]!r}"
        )
    length = int(text)
    if length > len(body):
        raise NotComparable(
            f"{who} answer's Inference-Header-Content-Length {length} is past the end of its "
            f"{len(body)}-byte body"
        )
    return body[:length], memoryview(body)[length:]


def _codings(answer: Answer) -> list[str]:
    value = answer.header(CONTENT_ENCODING) or ""
    return [coding.strip().lower() for coding in value.split(",")]


def _deflate(data: bytes, limit: int, what: str) -> bytes:
    # HTTP's "deflate" is the zlib format (RFC 9110 §8.4.1.2), but some servers send bare deflate data:
    # a valid zlib header (method 8, check bits) says which.
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0
    return _inflate(data, _ZLIB if zlib_header else _RAW, limit, what)


def _inflate(data: bytes, wbits: int, limit: int, what: str) -> bytes:
    """Decompress `data` (every gzip member of it), refusing more than `limit` bytes of output."""
    parts: list[bytes] = []
    size = 0
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            part = inflater.decompress(data, limit - size + 1)  # one byte more than allowed: "too much"
        except zlib.error as err:
            raise NotComparable(f"{what} is corrupt ({err})") from None
        size += len(part)
        if size > limit:
            raise NotComparable(f"{what} decompresses to more than {limit} bytes (spec.shadow.maxBodyBytes)")
        if not inflater.eof:
            raise NotComparable(f"{what} is truncated")
        parts.append(part)
        data = inflater.unused_data
        if not data:
            return b"".join(parts)
        if wbits != _GZIP:  # gzip may hold several members; zlib and raw deflate end with their stream
            raise NotComparable(f"{what} has {len(data)} bytes after its end")
