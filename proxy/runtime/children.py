"""Child processes for `outrider demo` (and the benchmark): start, wait for `listening`, stop by PID.

Usage: child = await Child.start(["outrider", "serve-model", ...], log_path); child.url; await child.stop()
Children log to a file, never to a pipe that could fill up. Reading the log is done in a thread.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson


def outrider_exe() -> str:
    """The `outrider` script next to the running interpreter (same environment)."""
    candidate = Path(sys.executable).parent / "outrider"
    return str(candidate) if candidate.exists() else "outrider"


def _listening_line(log: Path) -> dict[str, Any] | None:
    for line in log.read_bytes().splitlines():
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(item, dict) and item.get("event") == "listening":
            return item
    return None


@dataclass
class Child:
    """A started child and its `listening` announcement."""

    proc: asyncio.subprocess.Process
    log: Path
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """http://HOST:PORT of the main listener."""
        return f"http://{self.ready['address']}"

    @property
    def admin_url(self) -> str:
        """http://HOST:PORT of the admin listener (outrider only)."""
        return f"http://{self.ready['admin']}"

    @classmethod
    async def start(cls, cmd: list[str], log: Path, timeout: float = 30.0) -> Child:
        """Start `cmd` and wait until it logs `listening` (RuntimeError with its log tail otherwise)."""
        fh = await asyncio.to_thread(log.open, "wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=fh, stderr=asyncio.subprocess.STDOUT
            )
        finally:
            fh.close()
        child = cls(proc, log)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            ready = await asyncio.to_thread(_listening_line, log)
            if ready is not None:
                child.ready = ready
                return child
            if proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        await child.stop()
        tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-3000:]
        raise RuntimeError(f"{' '.join(cmd[:3])} did not start:\n{tail}")

    async def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to `timeout`, then SIGKILL; returns the exit code."""
        if self.proc.returncode is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                await asyncio.wait_for(self.proc.wait(), timeout)
            except ProcessLookupError:
                pass
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return int(self.proc.returncode or 0)
