"""Owned background tasks: every task is named, referenced and drained on shutdown.

Usage: tasks = TaskGroup(); tasks.spawn(coro, name="outcome-writer"); await tasks.drain(timeout=5)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskGroup:
    """Holds references to background tasks so they are never garbage-collected or forgotten."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> asyncio.Task[Any]:
        """Start `coro` as a named task owned by this group (on `loop`, the running loop, when given: the
        request path passes it, since on Python 3.11 finding the running loop costs a getpid syscall)."""
        task = asyncio.create_task(coro, name=name) if loop is None else loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def __len__(self) -> int:
        return len(self._tasks)

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the tasks, then cancel what is left."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
