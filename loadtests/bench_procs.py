"""Process facts the benchmark reads from /proc: CPU time spent so far, and a process's children.

Usage: before = cpu_seconds(pids); ...; used = cpu_seconds(pids) - before
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    text = (PROC / str(pid) / "stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of these processes (all their threads), so far."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return total / TICKS


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (nginx's workers, for one)."""
    found: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError):  # the process ended while we looked
            continue
    return sorted(found)
