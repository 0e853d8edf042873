"""A real `redis-server` for tests and benchmarks: a free 127.0.0.1 port, no persistence, killed, paused
or stopped by PID.

Usage:
    with running_redis(tmp_path / "redis.log") as server:
        url = server.url          # redis://127.0.0.1:PORT/0
        server.kill(); server.launch()   # a crash, then a restart on the same port

`redis-server --port 0` does not pick a free port (it disables TCP), so a port is found by binding a socket
first; if another process takes it in between, the start is retried on a new port.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int, timeout: float = 0.2) -> bool:
    """Whether a Redis answers PING on 127.0.0.1:`port` (an inline command: no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process on a fixed port; `launch()` (re)starts it there."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.log = log
        self.port = port or free_port()
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis://127.0.0.1:PORT/0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def launch(self, timeout: float = 10.0) -> None:
        """Start redis-server (no RDB, no AOF) and return once it answers PING; RuntimeError if it exits."""
        cmd = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        with self.log.open("ab") as fh:
            self.popen = subprocess.Popen(
                [*cmd, "--dir", str(self.log.parent)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while not ping(self.port):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"redis-server on port {self.port} did not start:\n{self.log.read_text()[-2000:]}"
                )
            time.sleep(0.01)

    def kill(self) -> None:
        """SIGKILL, as a crash would: connections are reset, nothing is saved."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers (a hung Redis)."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after `pause()`."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM (after SIGCONT, in case it is paused), then SIGKILL if it does not exit."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.resume()
        self.popen.terminate()
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()


@contextmanager
def running_redis(log: Path, attempts: int = 3) -> Iterator[RedisServer]:
    """A started RedisServer, stopped on exit (a port taken between probe and bind is retried)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        server = RedisServer(log)
        try:
            server.launch()
            break
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    try:
        yield server
    finally:
        server.stop()
