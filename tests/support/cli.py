"""Run outrider's offline commands from async tests (in a thread: they are blocking subprocesses).

Usage: records = await exported(data_dir); result = await analyzed(jsonl, config)
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import orjson

from tests.support.procs import outrider_cmd


def export_records(data_dir: Path, *args: str) -> list[dict[str, Any]]:
    """`outrider export --data-dir DIR ARGS`, parsed."""
    out = subprocess.run(
        outrider_cmd("export", "--data-dir", str(data_dir), *args), capture_output=True, check=True
    )
    return [orjson.loads(line) for line in out.stdout.splitlines()]


async def exported(data_dir: Path, *args: str) -> list[dict[str, Any]]:
    """`export_records` without blocking the test's event loop."""
    return await asyncio.to_thread(export_records, data_dir, *args)


def analyze_file(jsonl: Path, config: Path) -> dict[str, Any]:
    """`outrider analyze JSONL -c CONFIG --json`, parsed."""
    out = subprocess.run(
        outrider_cmd("analyze", str(jsonl), "-c", str(config), "--json"), capture_output=True, check=True
    )
    return dict(orjson.loads(out.stdout))


async def analyzed(jsonl: Path, config: Path) -> dict[str, Any]:
    """`analyze_file` without blocking the test's event loop."""
    return await asyncio.to_thread(analyze_file, jsonl, config)
