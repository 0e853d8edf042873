"""Processes of the benchmark: CPU time spent so far and children (from /proc), the machine's busy time, where
a system server's executable is, and waiting until a started server accepts on its ports.

Usage: before = cpu_seconds(pids); ...; used = cpu_seconds(pids) - before
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Iterable
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


def descendants(pid: int) -> list[int]:
    """`pid`'s children, their children, and so on (a supervisor's workers and anything they started)."""
    found, todo = [], [pid]
    while todo:
        kids = children_of(todo.pop())
        found += kids
        todo += kids
    return sorted(found)


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core; /proc/stat), so far."""
    fields = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICKS


def system_exe(name: str) -> str | None:
    """`name` on PATH, or in /usr/sbin (not on a normal user's PATH); None if not installed."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin")


async def accepts(port: int) -> bool:
    """Something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def serving(
    proc: asyncio.subprocess.Process,
    ports: Iterable[int],
    timeout: float,
    ready: Callable[[], bool] = lambda: True,
) -> bool:
    """Wait until every port accepts and `ready()` holds; False if `proc` exits or `timeout` passes first."""
    loop = asyncio.get_running_loop()
    deadline, ports = loop.time() + timeout, list(ports)
    while loop.time() < deadline and proc.returncode is None:
        if ready() and all([await accepts(p) for p in ports]):
            return True
        await asyncio.sleep(0.05)
    return False
