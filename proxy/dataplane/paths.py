"""Request paths normalised once, before routing, so that outrider and every upstream read the same path.

Usage: path = normalise("/v2/models/m/%2e%2e/x/infer?a=1")  # "/v2/models/x/infer?a=1", or BadPath

Steps, on the path only (the query string is passed on unchanged):

1. Percent-decoding, once, of unreserved characters (RFC 3986 §2.3: letters, digits, `-._~`) and of `/`
   (`%2F`). Every other escape stays encoded, with upper-case hex (§6.2.2.1), so `%252e` stays `%252e`:
   decoding twice is exactly the confusion an attacker wants between outrider and the upstream.
2. Repeated slashes collapse into one. Empty segments mean nothing to a model server (no OIP or KServe
   route has one), many upstreams (nginx's `merge_slashes`, most frameworks) merge them anyway, and a
   proxy that keeps them would route `/v2//models/m` differently from the `/v2/models/m` the upstream
   serves; merging before step 3 also resolves `a//..` the way those upstreams do.
3. Dot-segments are removed (RFC 3986 §5.2.4), except that a `..` climbing above the root is refused
   rather than silently dropped.

Refused with `BadPath` (400 bad_path): malformed escapes (`%zz`, a lone `%`), an encoded NUL, CR or LF, a path
that does not start with `/`, and any path that still contains `..` once normalised (`..;`, `...`: what
some servers read as a parent directory). `proxy.filters.route` also refuses a path that leaves the prefix
of the experiment its raw form matched.
"""

from __future__ import annotations

import re
import string

from proxy.dataplane.errors import BadPath

UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
DECODED = UNRESERVED | {"/"}
"""The characters whose escapes are decoded; every other escape is kept."""
FORBIDDEN = {0x00: "NUL", 0x0A: "LF", 0x0D: "CR"}
"""Encoded bytes refused outright: a NUL truncates C strings, CR/LF split log lines and headers downstream."""
_ESCAPE = re.compile(r"%(?P<hex>[0-9A-Fa-f]{2})?")
_SLASHES = re.compile(r"/{2,}")


def normalise(target: str) -> str:
    """`target` (path and optional `?query`) with its path normalised; raises BadPath (module docstring)."""
    path, sep, query = target.partition("?")
    if not path.startswith("/"):
        raise BadPath(f"the path {_shown(path)} does not start with '/'")
    if "%" not in path and "//" not in path and "/." not in path and ".." not in path:
        return target  # nothing to decode, merge or remove (nearly every request): no pass at all
    clean = remove_dot_segments(_SLASHES.sub("/", decode_once(path)))
    if ".." in clean:
        raise BadPath(f"the path {_shown(path)} still contains '..' once normalised")
    return clean + sep + query


def decode_once(path: str) -> str:
    """Decode the escapes of unreserved characters and `/`; upper-case the hex of the others."""

    def one(match: re.Match[str]) -> str:
        hex_digits = match.group("hex")
        if hex_digits is None:
            raise BadPath(f"the path {_shown(path)} has a '%' that is not followed by two hex digits")
        byte = int(hex_digits, 16)
        if byte in FORBIDDEN:
            raise BadPath(f"the path {_shown(path)} contains an encoded {FORBIDDEN[byte]}")
        char = chr(byte)
        return char if char in DECODED else "%" + hex_digits.upper()

    return _ESCAPE.sub(one, path) if "%" in path else path


def remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 on an absolute path, segment by segment; BadPath for a `..` above the root.

    A final `.` or `..` leaves a trailing slash (`/a/b/..` → `/a/`), as in the RFC.
    """
    segments = path.split("/")[1:]  # the path starts with '/': the first piece is empty
    if "." not in segments and ".." not in segments:
        return path
    out: list[str] = []
    last = len(segments) - 1
    for i, segment in enumerate(segments):
        if segment == "..":
            if not out:
                raise BadPath(f"the path {_shown(path)} climbs above the root")
            out.pop()
        elif segment != ".":
            out.append(segment)
            continue
        if i == last:
            out.append("")
    return "/" + "/".join(out)


def _shown(path: str) -> str:
    """The path for an error detail: quoted, and cut so that a long one cannot bloat the answer."""
    return repr(path if len(path) <= 200 else path[:200] + "…")
