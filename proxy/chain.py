"""The filter chain is data: a list of filters folded once, in reverse, around a terminal stage.

Usage: handler = build_chain([route, record], forward); reply = await handler(exchange)
A filter either returns `await call_next(ex)` (possibly after changing `ex` or the reply) or raises an
`OutriderError`. Request side runs in list order, response side in reverse.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Protocol

from proxy.exchange import Exchange, Reply

Stage = Callable[[Exchange], Awaitable[Reply]]


class Filter(Protocol):
    """One step of the request path."""

    async def __call__(self, ex: Exchange, call_next: Stage) -> Reply:
        """Handle `ex`, usually by awaiting `call_next(ex)`."""
        ...


def build_chain(filters: Sequence[Filter], terminal: Stage) -> Stage:
    """Fold `filters` around `terminal` so that `filters[0]` runs first."""
    stage: Stage = terminal
    for flt in reversed(filters):
        stage = partial(flt.__call__, call_next=stage)
    return stage
