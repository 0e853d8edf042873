"""The chain folds filters in order: request side forward, response side in reverse."""

from __future__ import annotations

import time

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.chain import Stage, build_chain
from proxy.exchange import Exchange, Inbound, Reply


class Tag:
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        self.seen.append(f"in:{self.name}")
        reply = await call_next(ex)
        self.seen.append(f"out:{self.name}")
        return reply


async def test_order() -> None:
    seen: list[str] = []

    async def terminal(ex: Exchange) -> Reply:
        seen.append("terminal")
        return Reply(200, CIMultiDict(), b"ok")

    chain = build_chain([Tag("a", seen), Tag("b", seen)], terminal)
    inbound = Inbound(
        "GET", "/", CIMultiDictProxy(CIMultiDict()), b"", None, time.time(), time.monotonic(), "r"
    )
    reply = await chain(Exchange(inbound))
    assert reply.body == b"ok"
    assert seen == ["in:a", "in:b", "terminal", "out:b", "out:a"]
