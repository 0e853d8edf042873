"""The filter chain is data: a list of filters folded once, in reverse, around a terminal stage.

Usage: handler = build_chain([route, record], forward); reply = await handler(exchange)
A filter either returns `await call_next(ex)` (possibly after changing `ex` or the reply) or raises an
`OutriderError`. Request side runs in list order, response side in reverse.

A filter whose request-side work is usually synchronous and which has no response side may also offer
`enter(ex) -> bool`: True when it did its work and the request goes on, False when this request needs its
`__call__` after all (a body still arriving). Consecutive such filters are fused into one stage that calls
their `enter`s in a row, so the common request does not pay a coroutine per filter; the first `False` hands
the request to that filter's `__call__`, with the rest of the chain after it, exactly as unfused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

from proxy.dataplane.exchange import Exchange, Reply

Stage = Callable[[Exchange], Awaitable[Reply]]
Enter = Callable[[Exchange], bool]


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
