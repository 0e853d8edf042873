"""The parsing side of a connection: httptools' callbacks turning bytes into queued `Request`s.

Usage: reader = RequestReader(conn); reader.feed(data)  (proxy.dataplane.connection does this)

Limits applied as the bytes arrive: the request target and each header line ≤ `MAX_LINE_BYTES`, at most
`MAX_HEADERS` headers, a head ≤ `MAX_HEAD_BYTES` however its lines are cut, pipelined heads ≤ `MAX_PIPELINE`
deep, chunk framing and trailers in proportion to their body. A refusal stops parsing for good: it is queued
behind the requests already parsed, so pipelined answers stay in order, and the connection closes after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import httptools

from proxy.dataplane.body import PREREAD_BYTES, RequestBody
from proxy.dataplane.client_ip import resolve_client
from proxy.dataplane.edge import request_id_of
from proxy.dataplane.errors import (
    BadFraming,
    BadRequest,
    HeadersTooLarge,
    OutriderError,
    TooManyConnections,
    VersionNotSupported,
)
from proxy.dataplane.head import parse_head
from proxy.dataplane.limits import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    MAX_LINE_BYTES,
)
from proxy.dataplane.request import Request
from proxy.feedback import PATH as FEEDBACK_PATH

if TYPE_CHECKING:
    from proxy.dataplane.connection import Connection

PAUSE_PIPELINE, PAUSE_BODY, PAUSE_WRITE, PAUSE_STOP = 1, 2, 4, 8
"""Why a connection does not read (any of them is enough)."""
MAX_PIPELINE = 16  # parsed heads waiting behind the one being answered (one read can hold many)
_FEEDBACK_QUERY = FEEDBACK_PATH + "?"


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing; the refusal waits in `RequestReader._refusal`."""


class RequestReader:
    """httptools' callbacks for one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.parser = httptools.HttpRequestParser(self)
        self.in_head = False
        """A request began and its header block is not complete."""
        self.parsing: Request | None = None
        """The request whose body the parser is in."""
        self._in_body = False
        self._url = b""
        self._raw: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._body_raw = 0
        self._refusal: OutriderError | None = None

    def feed(self, data: bytes) -> None:
        """Parse `data`; queue the requests it completes, or the refusal it earns."""
        if self._in_body:
            self._body_raw += len(data)
        else:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # the request is queued; what follows is not HTTP/1.1
            self.conn.stop_reading()
        except httptools.HttpParserError as exc:
            self._failed(exc)
        else:
            self._check_sizes()

    def on_message_begin(self) -> None:
        """A request starts: its header block must complete before the header deadline."""
        self.in_head = True
        self._url = b""
        self._raw = []

    def on_url(self, url: bytes) -> None:
        """A piece of the request target."""
        self._url += url
        if len(self._url) > MAX_LINE_BYTES:
            self._stop(BadRequest(f"request line over {MAX_LINE_BYTES} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header line (trailers after a chunked body are read past, never forwarded)."""
        if self._in_body:
            return
        if len(name) + len(value) > MAX_LINE_BYTES:
            self._stop(HeadersTooLarge(f"a header line over {MAX_LINE_BYTES} bytes"))
        raw = self._raw
        raw.append((name, value))
        if len(raw) > MAX_HEADERS:
            self._stop(HeadersTooLarge(f"more than {MAX_HEADERS} headers"))

    def on_headers_complete(self) -> None:
        """The head is complete: check it, queue its request (its body follows, if any)."""
        parser = self.parser
        version = parser.get_http_version()
        try:
            head = parse_head(parser.get_method(), self._url, self._raw, version)
        except OutriderError as err:
            self._stop(err)
        if len(self.conn.queue) >= MAX_PIPELINE:
            self._stop(BadRequest(f"more than {MAX_PIPELINE} pipelined requests"))
        self.in_head, self._in_body = False, True
        self._head_bytes = self._body_raw = 0
        self.conn.head_done()
        plane = self.conn.plane
        body = None
        if head.chunked or head.length:
            body = RequestBody(
                self.conn, plane.admission.body, self.conn.limits, head.length, head.expect_continue
            )
        path = head.path
        feedback = path == FEEDBACK_PATH or path.startswith(_FEEDBACK_QUERY)
        req = Request(
            head,
            request_id_of(head.headers) if head.has_request_id else plane.ids.next(),
            keep_alive=parser.should_keep_alive(),
            version10=version == "1.0",
            chain=plane.feedback if feedback else plane.traffic,
            fast=None if feedback else plane.traffic_fast,
            body=body,
        )
        if self.conn.peer_trusted:
            self._take_client_slot(req)
        self.parsing = req
        self.conn.queue.append(req)
        if self.conn.active is not None:
            self.conn.pause(PAUSE_PIPELINE)

    def on_body(self, chunk: bytes) -> None:
        """A piece of the current request's body."""
        req = self.parsing
        if req is None or req.body is None:
            return
        body = req.body
        body.feed(chunk)
        if not body.wanted and body.size >= PREREAD_BYTES:
            self.conn.pause(PAUSE_BODY)  # nobody asked for it yet (the chain may still refuse the request)

    def on_message_complete(self) -> None:
        """The current request is complete."""
        self._in_body = False
        req, self.parsing = self.parsing, None
        if req is not None and req.body is not None:
            req.body.finish()
            self.conn.resume(PAUSE_BODY)

    def _stop(self, err: OutriderError) -> NoReturn:
        self._refusal = err
        raise _Stop

    def _failed(self, exc: httptools.HttpParserError) -> None:
        err, self._refusal = self._refusal, None
        self.conn.stop_reading()
        if err is None:
            text = str(exc)
            kind = VersionNotSupported if "HTTP version" in text else BadFraming
            err = kind(f"malformed request: {text}")
        body = self.parsing.body if self.parsing is not None else None
        if self._in_body and body is not None:
            body.fail(err)  # the head was accepted: its request answers the error when it reads its body
        else:
            self.conn.queue.append(Request(None, self.conn.plane.ids.next(), refusal=err))

    def _check_sizes(self) -> None:
        body = self.parsing.body if self.parsing is not None else None
        if not self._in_body:
            if self._head_bytes > MAX_HEAD_BYTES:  # one header line that never ends
                self.conn.stop_reading()
                self.conn.queue.append(
                    Request(
                        None, self.conn.plane.ids.next(), refusal=HeadersTooLarge("header block too large")
                    )
                )
        elif body is not None and self._body_raw > 8 * body.size + MAX_HEAD_BYTES:
            body.fail(BadFraming("chunk framing or trailers out of proportion to the body"))

    def _take_client_slot(self, req: Request) -> None:
        head = req.head
        assert head is not None
        client = resolve_client(
            self.conn.peer, head.headers.getall("X-Forwarded-For", []), self.conn.plane.trusted
        ).address
        if client is None:
            return
        if self.conn.plane.admission.clients.take(client):
            req.slot = client
        else:
            req.refusal = TooManyConnections(f"client {client} has too many connections open")
