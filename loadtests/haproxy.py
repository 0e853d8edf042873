"""HAProxy for the benchmark: an HTTP reverse proxy with server-side keep-alive, one thread.

Runs in the foreground (`-db`) from its own directory, never the system service, so that its process id is
the one measured and stopped. One thread, like nginx's one worker and outrider's one event loop.
Usage: hap = await HAProxy.start(tmp / "haproxy", {"model": "127.0.0.1:9001"}); hap.url("model")
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass
from pathlib import Path

from loadtests.bench_procs import serving, system_exe
from loadtests.nginx import free_port
from proxy.runtime.children import Child

CONFIG = """\
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 75s
    timeout server 30s
    timeout http-keep-alive 75s
    option http-keep-alive
    http-reuse always
{sections}
"""
SECTION = """\
frontend fe_{name}
    bind 127.0.0.1:{port}
    default_backend be_{name}
backend be_{name}
    server s1 {upstream} maxconn 64
"""


@dataclass
class HAProxy:
    """A running haproxy and the port of each proxied upstream."""

    child: Child
    ports: dict[str, int]

    def url(self, name: str) -> str:
        """http://127.0.0.1:PORT of the frontend for `name`."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def pids(self) -> tuple[int, ...]:
        """The one haproxy process."""
        return (self.child.proc.pid,)

    @classmethod
    async def start(cls, root: Path, upstreams: dict[str, str], timeout: float = 10.0) -> HAProxy:
        """Write the config under `root`, start haproxy, wait until every frontend accepts."""
        ports = {name: free_port() for name in upstreams}
        sections = "".join(
            SECTION.format(name=name, port=ports[name], upstream=hostport)
            for name, hostport in upstreams.items()
        )
        conf, log = root / "haproxy.cfg", root / "haproxy.log"
        await asyncio.to_thread(_write, root, conf, CONFIG.format(sections=sections))
        out = await asyncio.to_thread(log.open, "wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                haproxy_exe() or "haproxy", "-db", "-f", str(conf),
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
            )  # fmt: skip
        finally:
            out.close()
        hap = cls(Child(proc, log, {"address": f"127.0.0.1:{next(iter(ports.values()))}"}), ports)
        if await serving(proc, ports.values(), timeout):
            return hap
        await hap.child.stop()
        raise RuntimeError(f"haproxy did not start:\n{log.read_text(errors='replace')[-3000:]}")


def _write(root: Path, conf: Path, text: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    conf.write_text(text)


def haproxy_exe() -> str | None:
    """haproxy on PATH or in /usr/sbin; None if not installed."""
    return system_exe("haproxy")


def haproxy_version() -> str:
    """`2.6.12`, or `absent`."""
    exe = haproxy_exe()
    if exe is None:
        return "absent"
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
    return first.split(" version ")[-1].split(" ")[0] if " version " in first else first
