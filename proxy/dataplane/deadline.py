"""A deadline that moves on every request, on one timer handle that is rarely rescheduled.

Usage:
    deadline = Deadline(loop, on_expiry)
    deadline.arm(loop.time() + 5.0)   # on every request (a keep-alive wait, a route timeout)
    deadline.disarm()                 # met: the handle stays, and finds nothing to do when it fires
    deadline.stop()                   # the connection is gone: the handle is cancelled

Lazy: `arm` keeps the handle already scheduled when it fires no later than the new deadline; firing early, it
schedules itself again for the deadline then in force. A keep-alive connection arms and disarms a deadline on
every request, on both sides of the proxy; a `call_at` plus a `cancel` each time cost more (~1 µs a request
for the two sides, docs/dataplane.md) than one handle that fires about once per timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

SLACK_S = 0.001
"""A timer may fire this early (libuv counts whole milliseconds): a deadline that close is met, so that a
handle firing just before it is not scheduled again for less than libuv can wait."""


class Deadline:
    """One deadline at a time; `on_expiry` runs once it passes while armed."""

    __slots__ = ("_handle", "armed", "due", "loop", "on_expiry")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expiry: Callable[[], None]) -> None:
        self.loop = loop
        self.on_expiry = on_expiry
        self.due = 0.0
        """loop.time() of the deadline in force (meaningful while `armed`)."""
        self.armed = False
        self._handle: asyncio.TimerHandle | None = None

    def arm(self, due: float) -> None:
        """The deadline is `due` (loop time), replacing any other."""
        self.due = due
        self.armed = True
        handle = self._handle
        if handle is None or handle.when() > due:
            if handle is not None:
                handle.cancel()
            self._handle = self.loop.call_at(due, self._fire)

    def disarm(self) -> None:
        """No deadline (the handle stays scheduled: `arm` will likely reuse it)."""
        self.armed = False

    def stop(self) -> None:
        """No deadline, and no handle keeping the owner alive."""
        self.armed = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        if not self.armed:
            return
        if self.loop.time() < self.due - SLACK_S:  # armed again since, for later
            self._handle = self.loop.call_at(self.due, self._fire)
            return
        self.armed = False
        self.on_expiry()
