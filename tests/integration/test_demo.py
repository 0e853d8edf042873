"""`outrider demo` end to end (small): model servers + outrider + sticky users, a scorecard, all stopped."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.support.procs import outrider_cmd


async def test_demo_runs_and_reports_a_healthy_split(models_dir: Path) -> None:
    cmd = outrider_cmd(
        "demo", "--requests", "600", "--users", "200", "--concurrency", "8", "--models-dir", str(models_dir)
    )
    proc = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, timeout=120)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()
    assert "demo: OK" in out
    assert "outcomes: produced 600 = stored 600 + pending 0 + dropped 0" in out
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.startswith(("stable ", "candidate "))
    }
    assert set(rows) == {"stable", "candidate"}
    assert float(rows["stable"][-1]) > float(rows["candidate"][-1])  # the weaker model is less accurate
    assert "stopped 3 processes" in out
