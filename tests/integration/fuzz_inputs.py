"""Deterministic fuzz inputs for tests/integration/test_fuzz.py: hypothesis strategies for raw requests
(methods, targets with `%`/unicode/`..`, header names and values with control characters, bodies,
Content-Length lies, chunked garbage, truncation) and for odd but well-formed ones, drawn with
`derandomize=True`; byte-level mutations of valid requests from a seeded `random.Random`.

Usage: raw = drawn(raw_requests(), 200) + mutated(random.Random(1), 750); odd = drawn(weird_requests, 50)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

T = TypeVar("T")

TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
PARTS = ("method", "target", "version", "eol", "headers", "framing", "cut")
"""What a raw request can get wrong; each breaks at most two, so the rest of the parser is reached too."""

token = st.text(TCHARS, min_size=1, max_size=12)
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
nasty = st.sampled_from(["\x00", "\r", "\n", "\t", " ", ":", "\x7f", "\x1b", "é", "\u2028", "😀", "%", '"'])
segment = st.one_of(
    st.sampled_from(
        ["v2", "models", "m", "infer", "outrider", "feedback", "..", ".", "", "%2e%2e", "%00", "%zz"]
    ),
    st.text(max_size=8).map(lambda t: quote(t, safe="")),
)
TARGETS = ["*", "", "http://models/v2/m/infer", "//x", "/v2/m#frag", "/" * 50, "/v2/\x00", "/v2/é", "/a b"]
GOOD = {
    "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    "target": st.builds(
        lambda segs, query: "/" + "/".join(segs) + query,
        st.lists(segment, min_size=1, max_size=5),
        st.one_of(st.just(""), printable.map(lambda q: "?" + quote(q, safe="=&"))),
    ),
    "version": st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
    "eol": st.just("\r\n"),
    "headers": st.lists(st.tuples(token, printable), max_size=5),
    "framing": st.sampled_from(["none", "length", "chunked"]),
    "cut": st.none(),
}
BAD = {
    "method": st.one_of(
        st.sampled_from(["TRACE", "CONNECT", "PRI", "get", "G ET", "", "X-CUSTOM"]), st.text(max_size=6)
    ),
    "target": st.one_of(st.sampled_from(TARGETS), st.text(max_size=12).map(lambda t: "/" + t)),
    "version": st.one_of(
        st.sampled_from(["HTTP/0.9", "HTTP/2.0", "HTTP/1.2", "http/1.1", "HTTP/1.1 ", ""]),
        st.text(max_size=9),
    ),
    "eol": st.sampled_from(["\n", "\r", "\r\r\n", "\n\r"]),
    "headers": st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(
                    ["Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Expect"]
                ),
                st.builds(str.__add__, token, nasty),
            ),
            st.one_of(
                st.sampled_from(["chunked", "100-continue", "close", "keep-alive, x-user-id", "-1", "1e3"]),
                st.text(max_size=20),
                st.builds(lambda a, b: a + b, nasty, st.text(max_size=8)),
            ),
        ),
        min_size=1,
        max_size=5,
    ),
    "framing": st.sampled_from(["length-short", "length-long", "chunked-garbage", "length-and-chunked"]),
    "cut": st.floats(0, 1),
}


def frame(kind: str, body: bytes) -> tuple[list[str], bytes]:
    """(framing header lines, body bytes on the wire) for one framing `kind`, honest or lying."""
    n = len(body)
    chunked = (b"%x\r\n%s\r\n" % (n, body) if body else b"") + b"0\r\n\r\n"
    return {
        "none": ([], b""),
        "length": ([f"Content-Length: {n}"], body),
        "length-short": ([f"Content-Length: {n // 2}"], body),
        "length-long": ([f"Content-Length: {n + 10}"], body),
        "chunked": (["Transfer-Encoding: chunked"], chunked),
        "chunked-garbage": (["Transfer-Encoding: chunked"], body[:5] + b"\r\n" + body),
        "length-and-chunked": ([f"Content-Length: {n}", "Transfer-Encoding: chunked"], chunked),
    }[kind]


@st.composite
def raw_requests(draw: st.DrawFn) -> bytes:
    """One request as bytes, broken in up to two of its PARTS."""
    broken = draw(st.sets(st.sampled_from(PARTS), max_size=2))
    part: dict[str, Any] = {name: draw(BAD[name] if name in broken else GOOD[name]) for name in PARTS}
    user = draw(st.one_of(token, st.text(max_size=4))) if "headers" in broken else draw(token)
    framing, body = frame(part["framing"], draw(st.binary(max_size=600)))
    lines = [f"{part['method']} {part['target']} {part['version']}", "Host: models", f"X-User-Id: {user}"]
    lines += [f"{k}: {v}" for k, v in part["headers"]] + framing
    eol = part["eol"]
    raw: bytes = (eol.join(lines) + eol + eol).encode("utf-8", "surrogatepass") + body
    cut: float | None = part["cut"]
    return raw if cut is None else raw[: int(len(raw) * cut)]


@dataclass(frozen=True)
class Weird:
    """A well-formed but odd request for aiohttp to send."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


weird_requests = st.builds(
    Weird,
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "QUERY", "X-CUSTOM"]),
    st.builds(lambda a, b: f"/{a}/{b}", st.sampled_from(["v2/models/m/infer", "v2", "other"]), st.text()),
    st.dictionaries(
        token.filter(lambda n: n.lower() not in {"host", "content-length"}), printable, max_size=8
    ),
    st.binary(max_size=4096),
)


def drawn(strategy: st.SearchStrategy[T], n: int) -> list[T]:
    """`n` examples of `strategy`, the same on every run (hypothesis as a derandomized data generator)."""
    out: list[T] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: T) -> None:
        out.append(example)

    collect()
    return out


VALID = [
    b"GET /v2/models/m HTTP/1.1\r\nHost: models\r\nX-User-Id: u1\r\n\r\n",
    b'POST /v2/models/m/infer HTTP/1.1\r\nHost: models\r\nX-User-Id: u2\r\nContent-Length: 7\r\n\r\n{"x":1}',
    b"POST /other/path?q=1 HTTP/1.1\r\nHost: models\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n",
    b"DELETE /v2/../v2/x HTTP/1.0\r\nHost: m\r\nConnection: keep-alive\r\n"
    b"X-Outrider-Variant: candidate\r\n\r\n",
]
INSERTS = [b"\r", b"\n", b"\x00", b" ", b":", b"\x7f", b"\xff", b"\t", b"%", b"\r\n", b"\r\n\r\n", b"9" * 30]


def mutated(rng: random.Random, n: int) -> list[bytes]:
    """`n` byte-level mutations (flips, inserts, deletions, repeated lines, truncation) of valid requests."""
    out = []
    for _ in range(n):
        data = bytearray(rng.choice(VALID))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            op = rng.randrange(5)
            if op == 0 and data:
                data[min(at, len(data) - 1)] ^= 1 << rng.randrange(8)
            elif op == 1:
                data[at:at] = rng.choice(INSERTS)
            elif op == 2:
                del data[at : at + rng.randint(1, 8)]
            elif op == 3:
                lines = bytes(data).split(b"\r\n")
                i = rng.randrange(len(lines))
                data = bytearray(b"\r\n".join(lines[: i + 1] + lines[i:]))
            else:
                del data[at:]
        out.append(bytes(data))
    return out
