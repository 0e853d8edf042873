"""What the benchmark ran on: cores, CPU model, kernel, load average and the versions of everything measured.

Usage: facts = machine(); facts["cpu_model"]
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from loadtests.haproxy import haproxy_version
from loadtests.nginx import nginx_version


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def _tool_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "absent"
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10)
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "present"


def _dist(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def machine() -> dict[str, object]:
    """Facts worth printing next to every figure."""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "mem_gib": _mem_gib(),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "aiohttp": _dist("aiohttp"),
        "uvloop": _dist("uvloop"),
        "nginx": nginx_version(),
        "haproxy": haproxy_version(),
        "httptools": _dist("httptools"),
        "wrk": _tool_version(["wrk", "-v"]).split(" Copyright")[0],
        "hey": _tool_version(["dpkg-query", "-W", "-f=${Version}", "hey"]),
    }
