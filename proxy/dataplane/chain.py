"""The filter chain is data: a list of filters folded once, in reverse, around a terminal stage.

Usage: handler = build_chain([route, record], forward); reply = await handler(exchange)
A filter either returns `await call_next(ex)` (possibly after changing `ex` or the reply) or raises an
`OutriderError`. Request side runs in list order, response side in reverse.

A filter whose request-side work is usually synchronous and which has no response side may also offer
`enter(ex) -> bool`: True when it did its work and the request goes on, False when this request needs its
`__call__` after all (a body still arriving). Consecutive such filters are fused into one stage that calls
their `enter`s in a row, so the common request does not pay a coroutine per filter; the first `False` hands
the request to that filter's `__call__`, with the rest of the chain after it, exactly as unfused.

The native data plane also runs a chain without a task or a coroutine when it can (`FastChain`,
proxy.dataplane.fastpath): a leading run of `enter` filters, then filters whose both sides are synchronous
(`Wrap`: `before`, then `after` or `failed`), then a terminal that can `start` an exchange with a callback.
`fast_chain` builds one when every filter fits, else None; the `Stage` stays the one behaviour of record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from proxy.dataplane.exchange import Exchange, Reply

Stage = Callable[[Exchange], Awaitable[Reply]]
Enter = Callable[[Exchange], bool]
Landed = Callable[[Reply | BaseException], None]
"""Called once with the terminal's answer, or with the error it ended in."""


class Filter(Protocol):
    """One step of the request path."""

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        """Handle `ex`, usually by awaiting `call_next(ex)`."""
        ...


def build_chain(filters: Sequence[Filter], terminal: Stage) -> Stage:
    """Fold `filters` around `terminal` so that `filters[0]` runs first (runs of `enter` filters fused)."""
    stage: Stage = terminal
    i = len(filters)
    while i > 0:
        j = i
        while j > 0 and callable(getattr(filters[j - 1], "enter", None)):
            j -= 1
        if j == i:  # an ordinary filter
            i -= 1
            stage = partial(filters[i].__call__, call_next=stage)
            continue
        stage = _fused(filters[j:i], stage)
        i = j
    return stage


def _fused(run: Sequence[Filter], after: Stage) -> Stage:
    """One stage for a run of `enter` filters, followed by `after`."""
    enters: list[Enter] = [flt.enter for flt in run]  # type: ignore[attr-defined]
    fallbacks: list[Stage] = []
    for k, flt in enumerate(run):
        rest = after if k == len(run) - 1 else _fused(run[k + 1 :], after)
        fallbacks.append(partial(flt.__call__, call_next=rest))

    async def stage(ex: Exchange) -> Reply:
        for k, enter in enumerate(enters):
            if not enter(ex):
                return await fallbacks[k](ex)
        return await after(ex)

    return stage


class Wrap(Protocol):
    """A filter whose request and response sides are both synchronous (`__call__` is built from them)."""

    def before(self, ex: Exchange) -> object:
        """The request side; what it returns is handed to `after`/`failed` (`SKIP`: nothing to do after)."""
        ...

    def after(self, ex: Exchange, state: object, reply: Reply) -> Reply:
        """The response side for an answer."""
        ...

    def failed(self, ex: Exchange, state: object, err: BaseException) -> None:
        """The response side for an error (an OutriderError, or CancelledError: the client went away)."""
        ...


SKIP = object()
"""`Wrap.before`'s answer when the request needs nothing of the filter afterwards."""


async def wrapped(flt: Wrap, ex: Exchange, call_next: Stage) -> Reply:
    """A `Wrap` filter's `__call__`: the same three steps the fast path takes, around `call_next`."""
    state = flt.before(ex)
    if state is SKIP:
        return await call_next(ex)
    try:
        reply = await call_next(ex)
    except BaseException as err:
        flt.failed(ex, state, err)
        raise
    return flt.after(ex, state, reply)


class Starter(Protocol):
    """A terminal stage that can also start an exchange without a coroutine."""

    async def __call__(self, ex: Exchange) -> Reply: ...

    def start(self, ex: Exchange, landed: Landed) -> bool:
        """Start `ex` and call `landed` once it ends; False (nothing done) when only `__call__` can."""
        ...


@dataclass(frozen=True, slots=True)
class FastChain:
    """A chain the native plane can run on callbacks (proxy.dataplane.fastpath)."""

    enters: tuple[Enter, ...]
    fallbacks: tuple[Stage, ...]
    """`fallbacks[k]`: filter k's `__call__` with the rest of the chain, for when `enters[k]` says False."""
    wraps: tuple[Wrap, ...]
    terminal: Starter


def fast_chain(filters: Sequence[Filter], terminal: Stage) -> FastChain | None:
    """The fast form of `build_chain(filters, terminal)`, or None when some filter or the terminal does not
    fit (a filter with neither `enter` nor `before`, or a `before` filter ahead of an `enter` one)."""
    if not callable(getattr(terminal, "start", None)):
        return None
    k = 0
    while k < len(filters) and callable(getattr(filters[k], "enter", None)):
        k += 1
    rest = filters[k:]
    if not all(callable(getattr(flt, "before", None)) for flt in rest):
        return None
    fallbacks = []
    for i, flt in enumerate(filters[:k]):
        fallbacks.append(partial(flt.__call__, call_next=build_chain(filters[i + 1 :], terminal)))
    return FastChain(
        tuple(flt.enter for flt in filters[:k]),  # type: ignore[attr-defined]
        tuple(fallbacks),
        tuple(rest),  # type: ignore[arg-type]
        terminal,  # type: ignore[arg-type]
    )
