"""A one-line progress bar on stderr for long offline commands, drawn only when stderr is a terminal.

Usage:
    with Bar("export", total=lambda: store.count()) as bar:
        for row in rows:
            bar.advance()
Off a terminal (pipes, CI logs, tests) nothing is written and `total` is never computed, so scripts see
exactly the output they saw before; advancing then costs one addition.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TextIO

WIDTH = 24
REDRAW_S = 0.1


def human(count: float, unit: str) -> str:
    """`12,345 records` or, for bytes, `3.4 MiB`."""
    if unit != "bytes":
        return f"{count:,.0f} {unit}".rstrip()
    for suffix, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:.1f} {suffix}"
    return f"{count:.0f} B"


class Bar:
    """Label, bar, percent, done/total and elapsed seconds, redrawn at most every REDRAW_S on one line."""

    def __init__(
        self,
        label: str,
        total: int | Callable[[], int] | None = None,
        *,
        unit: str = "records",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.label, self.unit, self.clock = label, unit, clock
        self.total = (total() if callable(total) else total) if self.enabled else None
        self.done = 0
        self.started = clock()
        self._drawn_at = -REDRAW_S

    def __enter__(self) -> Bar:
        self.draw()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def advance(self, n: int = 1) -> None:
        """Count `n` more units done; redraw if the last drawing is old enough."""
        self.done += n
        if self.enabled and self.clock() - self._drawn_at >= REDRAW_S:
            self.draw()

    def line(self) -> str:
        """The text of the bar now."""
        elapsed = f"{self.clock() - self.started:.1f}s"
        if not self.total:
            count = f"  {human(self.done, self.unit)}" if self.unit else ""
            return f"{self.label}{count}  {elapsed}"
        share = min(self.done / self.total, 1.0)
        filled = round(share * WIDTH)
        bar = "#" * filled + "." * (WIDTH - filled)
        counts = f"{human(self.done, self.unit)} / {human(self.total, self.unit)}"
        return f"{self.label}  [{bar}] {share:4.0%}  {counts}  {elapsed}"

    def draw(self) -> None:
        """Redraw the line in place (carriage return, then clear to the end of the line)."""
        if not self.enabled:
            return
        self._drawn_at = self.clock()
        self.stream.write(f"\r{self.line()}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()


def tracked(lines: Iterable[bytes], bar: Bar) -> Iterator[bytes]:
    """`lines`, advancing `bar` by each line's length (a bar over the bytes of a file)."""
    for line in lines:
        bar.advance(len(line))
        yield line


def bar(fraction: float, width: int = WIDTH) -> str:
    """`[######------]` for a fraction in [0, 1] (clamped)."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"
