"""One request on a connection of the native data plane, from its parsed head to its answer.

Usage: req = Request(head, rid, keep_alive=True, chain=chain, body=body) or Request(None, rid, refusal=err)
A refused request (a framing error, a header limit, a per-client cap) carries its error and never reaches
the chain; it is answered in its turn, like any other, so pipelined answers stay in order.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from proxy.dataplane.body import RequestBody
from proxy.dataplane.chain import FastChain, Stage
from proxy.dataplane.errors import OutriderError
from proxy.dataplane.exchange import Exchange
from proxy.dataplane.head import Head


class Request:
    """A request in a connection's queue: either parsed (with its chain) or refused (with its error)."""

    __slots__ = (
        "body",
        "chain",
        "close",
        "exchange",
        "fast",
        "head",
        "keep_alive",
        "received_at",
        "received_mono",
        "refusal",
        "rid",
        "slot",
        "streaming",
        "task",
        "version10",
    )

    def __init__(
        self,
        head: Head | None,
        rid: str,
        *,
        keep_alive: bool = False,
        version10: bool = False,
        chain: Stage | None = None,
        fast: FastChain | None = None,
        body: RequestBody | None = None,
        refusal: OutriderError | None = None,
    ) -> None:
        self.head = head
        self.rid = rid
        self.keep_alive = keep_alive
        self.version10 = version10
        self.chain = chain
        self.fast = fast
        """The chain on callbacks (proxy.dataplane.fastpath), when it has one."""
        self.exchange: Exchange | None = None
        """The exchange in flight on callbacks (None before it starts, after it lands, or in a task)."""
        self.body = body
        self.refusal = refusal
        self.received_at = time.time()
        self.received_mono = time.monotonic()
        self.slot: str | None = None
        """The client whose per-client slot this request holds (requests through a trusted proxy)."""
        self.close = False
        """Close the connection after this answer (decided when the answer is written)."""
        self.streaming = False
        """The answer's body is being streamed (its stream is closed however the task ends)."""
        self.task: asyncio.Task[Any] | None = None

    @property
    def method(self) -> str:
        """The method, or "" for a request refused before its head was understood."""
        return self.head.method if self.head is not None else ""

    @property
    def body_unread(self) -> bool:
        """Part of the body may still be on the wire: the connection cannot carry another request."""
        return self.body is not None and not self.body.complete
