"""Start real processes for tests and wait for their `listening` log line.

Every long-running program of this repo writes one JSON line to stderr once its sockets are bound:
`{"event": "listening", "service": NAME, "address": "HOST:PORT", ...}` (outrider adds `"admin": "HOST:PORT"`).
Processes log to a file (never a pipe that could fill up); `Proc.stop()` ends them by PID.

Usage:
    proc = start(["outrider", "serve-model", "--model", path, "--port", "0"], tmp_path / "ms.log")
    url = proc.url
    proc.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


TEST_ENV = {"OUTRIDER_DRAIN_DELAY": "0"}
"""Tests stop outrider by SIGTERM all the time: no load balancer needs the 5 s drain delay here (a test that
measures draining passes its own)."""


def outrider_cmd(*args: str) -> list[str]:
    """Command line of the installed `outrider` script in this interpreter's environment."""
    return [str(BIN / "outrider"), *args]


def run_cmd(configs: list[Path], data_dir: Path, *args: str) -> list[str]:
    """`outrider run` on ephemeral loopback ports with these experiment files and data directory."""
    files = [arg for path in configs for arg in ("-c", str(path))]
    ports = ("--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")
    return outrider_cmd("run", *files, *ports, "--data-dir", str(data_dir), *args)


def echo_upstream(name: str, log: Path, *args: str) -> Proc:
    """Start tests/support/upstream.py as `name` (its `--fault` etc. in `args`)."""
    return start([sys.executable, "-m", "tests.support.upstream", "--name", name, *args], log)


@dataclass
class Proc:
    """A started process and what its `listening` line said."""

    popen: subprocess.Popen[bytes]
    log: Path
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """HOST:PORT of the main listener."""
        return str(self.ready["address"])

    @property
    def url(self) -> str:
        """http://HOST:PORT of the main listener."""
        return f"http://{self.address}"

    @property
    def admin_url(self) -> str:
        """http://HOST:PORT of the admin listener (outrider only)."""
        return f"http://{self.ready['admin']}"

    def log_lines(self) -> list[dict[str, Any]]:
        """Every JSON line the process has logged so far."""
        out: list[dict[str, Any]] = []
        for line in self.log.read_bytes().splitlines():
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(item, dict):
                out.append(item)
        return out

    def signal(self, sig: int) -> None:
        """Send `sig` to the process."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        return int(self.popen.returncode)


def start(cmd: list[str], log: Path, timeout: float = 30.0, env: dict[str, str] | None = None) -> Proc:
    """Start `cmd` with stderr and stdout to `log`; return once it logged `listening` (or raise)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as fh:
        popen = subprocess.Popen(
            cmd,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, **TEST_ENV, **(env or {})},
        )
    proc = Proc(popen, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for item in proc.log_lines():
            if item.get("event") == "listening":
                proc.ready = item
                return proc
        if popen.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {popen.returncode}:\n{log.read_text()[-4000:]}")
        time.sleep(0.02)
    proc.stop()
    raise RuntimeError(f"{cmd} did not log 'listening' within {timeout}s:\n{log.read_text()[-4000:]}")
