"""Helpers for tests of `outrider run` replicas sharing a real redis-server (`--store redis://…`).

Usage:
    procs = start_replicas(config, tmp_path, redis.url, 3)
    async with Load(procs) as load: ...        # sticky users round-robin over the live replicas
    leader = await leader_of(session, procs)
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.fleet import eventually
from tests.support.http import scrape
from tests.support.procs import Proc, run_cmd, start

LEASE_S = 1.0
SECRET = b"s" * 32
"""The replicas' shared feedback secret: it signs the controllers' checkpoints too."""


@dataclass(frozen=True)
class Answer:
    """One response as the client saw it, and which replica gave it."""

    at: float
    replica: int
    variant: str
    request_id: str
    status: int


def start_replicas(config: Path, tmp_path: Path, url: str, n: int) -> list[Proc]:
    """`n` replicas on the store `url` (each its own data dir), started together; all sign checkpoints with
    one shared feedback secret."""
    secret = tmp_path / "feedback.secret"
    if not secret.exists():
        secret.write_bytes(SECRET)
        secret.chmod(0o600)
    args = ("--store", url, "--store-lease", f"{LEASE_S}s", "--feedback-secret-file", str(secret))
    cmds = [run_cmd([config], tmp_path / f"data-{k}", *args) for k in range(n)]
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(start, cmd, tmp_path / f"replica-{k}.log") for k, cmd in enumerate(cmds)]
    procs = []
    for future in futures:
        if future.exception() is None:
            procs.append(future.result())
    for future in futures:
        future.result()
    return procs


async def set_failing(session: aiohttp.ClientSession, upstream: Proc, permille: int) -> None:
    """The echo upstream answers 500 to this share of its users from now on."""
    async with session.put(f"{upstream.url}/__fail_permille/{permille}") as r:
        assert r.status == 200


async def leader_of(session: aiohttp.ClientSession, procs: list[Proc], seconds: float = 10.0) -> int:
    """The index of the one replica with `outrider_leader 1` (waits until there is exactly one)."""

    async def one() -> int | None:
        leading = []
        for k, proc in enumerate(procs):
            if proc.popen.poll() is None and (await scrape(session, proc.admin_url))["outrider_leader"] == 1:
                leading.append(k)
        return leading[0] + 1 if len(leading) == 1 else None

    return await eventually(one, seconds) - 1


def events(proc: Proc, name: str) -> list[dict[str, Any]]:
    """The log lines of `proc` with this event."""
    return [e for e in proc.log_lines() if e.get("event") == name]


@dataclass
class Load:
    """`users` sticky users sending inference requests, each to the live replicas in turn."""

    procs: list[Proc]
    users: int = 8
    answers: list[Answer] = field(default_factory=list)
    dead: set[int] = field(default_factory=set)
    _done: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._user(i)) for i in range(self.users)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._done.set()
        await asyncio.gather(*self._tasks)
        assert self._session is not None
        await self._session.close()

    async def _user(self, seed: int) -> None:
        rng = random.Random(seed)
        turn = seed
        assert self._session is not None
        while not self._done.is_set():
            live = [k for k in range(len(self.procs)) if k not in self.dead]
            k = live[turn % len(live)]
            turn += 1
            headers = {"x-user-id": f"user-{rng.randrange(5000)}", "content-type": "application/json"}
            url = f"{self.procs[k].url}/v2/models/digits/infer"
            try:
                async with self._session.post(url, data=b"{}", headers=headers) as r:
                    await r.read()
                    answer = Answer(
                        time.time(), k, r.headers["x-outrider-variant"], r.headers["x-request-id"], r.status
                    )
            except (aiohttp.ClientError, KeyError):  # a replica killed under the request: not answered
                continue
            self.answers.append(answer)

    def served_by(self, k: int) -> list[Answer]:
        """The answers replica `k` gave."""
        return [a for a in self.answers if a.replica == k]
