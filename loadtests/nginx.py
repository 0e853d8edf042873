"""nginx for the benchmark: a fixed-body upstream, and a reverse proxy with upstream keep-alive.

Each instance runs from its own directory (config, pid file, logs, temp paths), never the system service, in
the foreground (`daemon off`) so that its process id is the master's and it is stopped by that id.
Usage: ngx = await Nginx.start(tmp / "proxy", [proxy_server("model", upstream_hostport)]); ngx.url("model")
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from loadtests.bench_procs import children_of, serving, system_exe
from proxy.runtime.children import Child

WORKERS = 1
"""Worker processes. One, so that nginx and outrider (one process, one event loop) each get one core."""

CONFIG = """\
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/octet-stream;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{servers}
}}
"""
FIXED_SERVER = """\
    server {{
        listen 127.0.0.1:{port};
        location = {path} {{ default_type application/json; return 200 '{body}'; }}
    }}"""
PROXY_SERVER = """\
    upstream {name} {{ server {upstream}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://{name};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""


@dataclass(frozen=True, slots=True)
class Server:
    """One `server` block of the config, reachable on `port` once started."""

    name: str
    port: int
    text: str


def free_port() -> int:
    """A port that was free a moment ago (nginx cannot report the port it bound, unlike our own servers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fixed_server(name: str, path: str, body: bytes) -> Server:
    """Answers POST `path` with 200 and the canned JSON `body` — the trivially fast upstream."""
    port = free_port()
    text = body.decode().replace("\\", "\\\\").replace("'", "\\'")
    return Server(name, port, FIXED_SERVER.format(port=port, path=path, body=text))


def proxy_server(name: str, upstream: str) -> Server:
    """Proxies everything to `upstream` (HOST:PORT) over HTTP/1.1 with a pool of 64 idle connections."""
    port = free_port()
    return Server(name, port, PROXY_SERVER.format(name=name, port=port, upstream=upstream))


def write_config(root: Path, servers: list[Server]) -> Path:
    """nginx.conf for `servers`, with every path nginx writes kept under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # workers run as an unprivileged user when the master is root
    conf = root / "nginx.conf"
    body = "\n".join(s.text for s in servers)
    conf.write_text(CONFIG.format(workers=WORKERS, root=root, servers=body))
    return conf


@dataclass
class Nginx:
    """A running nginx: its master process (a `Child`) and the ports of its servers."""

    child: Child
    ports: dict[str, int]

    def url(self, server: str) -> str:
        """http://127.0.0.1:PORT of the server block called `server`."""
        return f"http://127.0.0.1:{self.ports[server]}"

    def pids(self) -> tuple[int, ...]:
        """The master and its workers: the processes whose CPU time is nginx's cost."""
        master = self.child.proc.pid
        return (master, *children_of(master))

    @classmethod
    async def start(cls, root: Path, servers: list[Server], timeout: float = 10.0) -> Nginx:
        """Write the config under `root`, start nginx, and wait until every port answers and workers run."""
        conf = await asyncio.to_thread(write_config, root, servers)
        log = root / "error.log"
        cmd = [nginx_exe() or "nginx", "-p", str(root), "-e", str(log), "-c", str(conf), "-g", "daemon off;"]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        ngx = cls(
            Child(proc, log, {"address": f"127.0.0.1:{servers[0].port}"}),
            {s.name: s.port for s in servers},
        )
        if await serving(proc, (s.port for s in servers), timeout, lambda: len(ngx.pids()) > WORKERS):
            return ngx
        await ngx.child.stop()
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"nginx did not start ({' '.join(cmd)}):\n{tail}")


def nginx_exe() -> str | None:
    """nginx on PATH or in /usr/sbin; None if not installed."""
    return system_exe("nginx")


def nginx_version() -> str:
    """`nginx/1.22.1`, or `absent`."""
    exe = nginx_exe()
    if exe is None:
        return "absent"
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: ")
