"""A `Reply` → the bytes of an HTTP/1.1 response head, with the headers the edge adds to every answer.

Usage: labels = finish(reply, ex, rid); head = render_head(200, reply.headers, framing, version10=False)

`finish` gives the same answer headers as the aiohttp edge (proxy.dataplane.edge.Edge): `x-request-id`, the
variant
unless its experiment sets `exposeVariant: false` (then not even an upstream's copy), the feedback token only
from `ex.extra` (never an upstream's). Framing headers (Content-Length, Transfer-Encoding, Connection) are
the data plane's alone: the caller passes them in `framing`, any in the reply are dropped.
"""

from __future__ import annotations

import http
import time
from email.utils import formatdate
from typing import ClassVar

from multidict import CIMultiDict

from proxy.dataplane.exchange import Reply
from proxy.dataplane.raw_headers import RawHeaders


def _status_line(version: str, status: int) -> str:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return f"HTTP/{version} {status} {phrase}\r\n"


_LINES = {
    version: {status: _status_line(version, status) for status in range(100, 600)}
    for version in ("1.0", "1.1")
}
_LINES_B = {
    version: {status: line.encode() for status, line in lines.items()} for version, lines in _LINES.items()
}
_FRAMING = ("Content-Length", "Transfer-Encoding", "Connection")


class _Date:
    """The Date header's value, formatted once per second."""

    second: ClassVar[int] = -1
    value: ClassVar[str] = ""

    line: ClassVar[bytes] = b""

    @classmethod
    def now(cls) -> str:
        second = int(time.time())
        if second != cls.second:
            cls.second, cls.value = second, formatdate(second, usegmt=True)
            cls.line = f"Date: {cls.value}\r\n".encode()
        return cls.value

    @classmethod
    def header_line(cls) -> bytes:
        """`Date: ...` and its CRLF."""
        cls.now()
        return cls.line


def render_head(status: int, headers: CIMultiDict[str], framing: str, *, version10: bool) -> bytes:
    """Status line, `headers` (without framing ones), `framing` (complete lines), Date, the blank line.

    ValueError if a header would split the response (CR or LF in a name or value).
    """
    if "Content-Length" in headers or "Transfer-Encoding" in headers or "Connection" in headers:
        headers = headers.copy()
        for name in _FRAMING:
            headers.popall(name, None)
    lines = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
    count = len(headers)
    if lines.count("\n") != count or lines.count("\r") != count:
        raise ValueError("CR or LF inside a response header")
    date = "" if "Date" in headers else f"Date: {_Date.now()}\r\n"
    status_line = _LINES["1.0" if version10 else "1.1"].get(status) or _status_line("1.1", status)
    return f"{status_line}{lines}{framing}{date}\r\n".encode("utf-8", "surrogateescape")


def render_raw_head(status: int, raw: RawHeaders, framing: str, *, version10: bool) -> bytes:
    """`render_head` for headers kept as the upstream sent them (framing ones are never among them)."""
    status_line = _LINES_B["1.0" if version10 else "1.1"].get(status) or _status_line("1.1", status).encode()
    date = b"" if raw.has_date else _Date.header_line()
    return b"".join((status_line, raw.lines(), framing.encode(), date, b"\r\n"))


def reply_head(reply: Reply, framing: str, *, version10: bool) -> bytes:
    """The head of `reply`, from its raw headers if nobody read them as a mapping, else from `headers`."""
    raw = reply.raw
    if raw is not None:
        return render_raw_head(reply.status, raw, framing, version10=version10)
    return render_head(reply.status, reply.headers, framing, version10=version10)
