"""The chain folds filters in order: request side forward, response side in reverse."""

from __future__ import annotations

import time

from multidict import CIMultiDict, CIMultiDictProxy

from proxy.dataplane.chain import Filter, Stage, build_chain
from proxy.dataplane.exchange import Exchange, Inbound, Reply


class Tag:
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        self.seen.append(f"in:{self.name}")
        reply = await call_next(ex)
        self.seen.append(f"out:{self.name}")
        return reply


class Entering:
    """A filter with a synchronous `enter`; `sync` says whether it can do its work there."""

    def __init__(self, name: str, seen: list[str], sync: bool = True) -> None:
        self.name, self.seen, self.sync = name, seen, sync

    def enter(self, ex: Exchange) -> bool:
        self.seen.append(f"enter:{self.name}" if self.sync else f"declined:{self.name}")
        return self.sync

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        self.seen.append(f"call:{self.name}")
        return await call_next(ex)


def _inbound() -> Inbound:
    return Inbound("GET", "/", CIMultiDictProxy(CIMultiDict()), b"", None, time.time(), time.monotonic(), "r")


def _terminal(seen: list[str]) -> Stage:
    async def terminal(ex: Exchange) -> Reply:
        seen.append("terminal")
        return Reply(200, CIMultiDict(), b"ok")

    return terminal


async def test_order() -> None:
    seen: list[str] = []
    chain = build_chain([Tag("a", seen), Tag("b", seen)], _terminal(seen))
    reply = await chain(Exchange(_inbound()))
    assert reply.body == b"ok"
    assert seen == ["in:a", "in:b", "terminal", "out:b", "out:a"]


async def test_entering_filters_are_fused_and_keep_their_order() -> None:
    seen: list[str] = []
    filters: list[Filter] = [Entering("a", seen), Entering("b", seen), Tag("t", seen), Entering("c", seen)]
    chain = build_chain(filters, _terminal(seen))
    await chain(Exchange(_inbound()))
    assert seen == ["enter:a", "enter:b", "in:t", "enter:c", "terminal", "out:t"]


async def test_a_declined_enter_runs_that_filters_call_then_the_rest_once() -> None:
    seen: list[str] = []
    filters = [Entering("a", seen), Entering("b", seen, sync=False), Entering("c", seen)]
    chain = build_chain(filters, _terminal(seen))
    await chain(Exchange(_inbound()))
    assert seen == ["enter:a", "declined:b", "call:b", "enter:c", "terminal"]
