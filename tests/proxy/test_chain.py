"""The chain folds filters in order: request side forward, response side in reverse; its fast form (enters,
wraps, a terminal that starts on callbacks) exists only when every filter fits."""

from __future__ import annotations

import time

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from proxy.dataplane.chain import SKIP, Filter, Landed, Stage, build_chain, fast_chain, wrapped
from proxy.dataplane.errors import NotFound
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


class Wrapping:
    """A `Wrap` filter: synchronous request and response sides (SKIP when `skip`)."""

    def __init__(self, name: str, seen: list[str], skip: bool = False) -> None:
        self.name, self.seen, self.skip = name, seen, skip

    def before(self, ex: Exchange) -> object:
        self.seen.append(f"before:{self.name}")
        return SKIP if self.skip else self.name

    def after(self, ex: Exchange, state: object, reply: Reply) -> Reply:
        self.seen.append(f"after:{self.name}:{state}")
        return reply

    def failed(self, ex: Exchange, state: object, err: BaseException) -> None:
        self.seen.append(f"failed:{self.name}:{type(err).__name__}")

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        return await wrapped(self, ex, call_next)


class Starting:
    """A terminal that can start on callbacks."""

    async def __call__(self, ex: Exchange) -> Reply:
        raise AssertionError("awaited")

    def start(self, ex: Exchange, landed: Landed) -> bool:
        return True


async def test_a_wrap_filter_runs_its_sides_around_the_rest_and_sees_errors() -> None:
    seen: list[str] = []

    async def failing(ex: Exchange) -> Reply:
        raise NotFound("none")

    chain = build_chain([Wrapping("w", seen), Wrapping("s", seen, skip=True)], _terminal(seen))
    await chain(Exchange(_inbound()))
    assert seen == ["before:w", "before:s", "terminal", "after:w:w"]
    seen.clear()
    with pytest.raises(NotFound):
        await build_chain([Wrapping("w", seen)], failing)(Exchange(_inbound()))
    assert seen == ["before:w", "failed:w:NotFound"]


def test_a_fast_chain_needs_enters_then_wraps_then_a_starting_terminal() -> None:
    seen: list[str] = []
    enters, wraps = [Entering("a", seen), Entering("b", seen)], [Wrapping("w", seen)]
    fast = fast_chain([*enters, *wraps], Starting())
    assert fast is not None
    assert len(fast.enters) == len(fast.fallbacks) == 2
    assert fast.wraps == tuple(wraps)
    assert fast_chain([*enters, *wraps], _terminal(seen)) is None  # the terminal cannot start
    assert fast_chain([*enters, Tag("t", seen), *wraps], Starting()) is None  # a filter that must await
    assert fast_chain([*wraps, *enters], Starting()) is None  # an enter after a wrap


async def test_a_fast_chains_fallback_is_that_filter_and_the_rest_of_the_chain() -> None:
    seen: list[str] = []
    fast = fast_chain([Entering("a", seen), Entering("b", seen), Wrapping("w", seen)], _Awaited(seen))
    assert fast is not None
    await fast.fallbacks[1](Exchange(_inbound()))  # `b` declined: its __call__, then the rest, awaited
    assert seen == ["call:b", "before:w", "awaited", "after:w:w"]


class _Awaited(Starting):
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def __call__(self, ex: Exchange) -> Reply:
        self.seen.append("awaited")
        return Reply(200, CIMultiDict(), b"ok")
