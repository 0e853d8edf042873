"""schemathesis against a real outrider's admin port, every check on every documented operation; and the
admin token as a real client meets it.

Two runs against a sidecar that has a token: without credentials (every mutation must be refused, and the
experiment's state must be unchanged afterwards) and with the token (mutations really happen). The default
run is bounded and seeded; the `slow` one is larger and unseeded (`make reliability`).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.admin.api import OPENAPI_FILE
from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.procs import BIN, Proc

TOKEN = "token-for-the-admin-tests"
NAME = "digits-canary"  # the `name` example in the document: schemathesis' examples phase reaches it
DOC = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
OPERATIONS = sorted(f"{m.upper()} {p}" for p, item in DOC["paths"].items() for m in item)
MUTATIONS = [op for op in OPERATIONS if op.startswith("POST ")]
# schemathesis leaves out the operation that served it the document (GET /openapi.json): that one is
# compared byte for byte with the committed file below
TESTED = len(OPERATIONS) - 1


def start_admin(outrider: OutriderFactory, tmp_path: Path, token: str | None = TOKEN) -> Proc:
    """An outrider with one canary (its upstreams are never called here), with or without an admin token."""
    args: tuple[str, ...] = ()
    if token is not None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        (tmp_path / "admin-token").write_text(token)
        args = ("--admin-token-file", str(tmp_path / "admin-token"))
    return outrider(canary_yaml("http://127.0.0.1:1", "http://127.0.0.1:2", name=NAME), args=args)


async def schemathesis(
    admin_url: str, work: Path, *, token: str | None, max_examples: int, seed: int | None
) -> dict[str, Any]:
    """`st run --checks all` on the served document; its JSON report (the console output on failure)."""
    await asyncio.to_thread(work.mkdir, parents=True, exist_ok=True)
    report = work / "report.json"
    cmd = [str(BIN / "st"), "run", f"{admin_url}/openapi.json", "--checks", "all"]
    cmd += ["--max-examples", str(max_examples), "--workers", "1", "--no-color"]
    cmd += ["--report", "json", "--report-json-path", str(report)]
    cmd += ["--seed", str(seed)] if seed is not None else []
    cmd += ["-H", f"Authorization: Bearer {token}"] if token is not None else []
    # cwd: schemathesis keeps its example database and reports in the working directory
    done = await asyncio.to_thread(
        subprocess.run, cmd, cwd=work, capture_output=True, timeout=600, env={**os.environ, "NO_COLOR": "1"}
    )
    output = done.stdout.decode(errors="replace")[-6000:]
    assert done.returncode == 0, output
    result: dict[str, Any] = json.loads(report.read_text())
    assert (result["failures"], result["errors"]) == ([], []), output
    assert result["operations"]["tested"] == TESTED, output
    assert result["test_cases"]["with_failures"] == 0, output
    who = "anonymous" if token is None else "with token"
    print(f"schemathesis {who}: {result['test_cases']['generated']} cases, seed {result['seed']}, 0 failures")
    return result


async def experiment(admin_url: str) -> dict[str, Any]:
    """GET /experiments/NAME."""
    async with aiohttp.ClientSession() as session, session.get(f"{admin_url}/experiments/{NAME}") as r:
        assert r.status == 200
        body: dict[str, Any] = await r.json()
        return body


async def check_both_ways(outrider: OutriderFactory, tmp_path: Path, examples: int, seed: int | None) -> None:
    """Without credentials: all green, every mutation refused, state untouched. With the token: all green,
    and the state moved (a promote/rollback/pause from the run was applied)."""
    proxy = start_admin(outrider, tmp_path)
    anonymous = await schemathesis(
        proxy.admin_url, tmp_path / "anonymous", token=None, max_examples=examples, seed=seed
    )
    assert sorted(anonymous["warnings"]["missing_auth"]) == MUTATIONS  # only 401s came back
    untouched = await experiment(proxy.admin_url)
    created = [h["reason"] for h in untouched["state"]["history"]]
    assert (untouched["version"], untouched["phase"], created) == (1, "progressing", ["created"])
    await schemathesis(proxy.admin_url, tmp_path / "token", token=TOKEN, max_examples=examples, seed=seed)
    changed = await experiment(proxy.admin_url)
    assert changed["version"] > 1
    assert all(entry["reason"].startswith("manual ") for entry in changed["state"]["history"][1:])
    assert proxy.popen.poll() is None


async def test_schemathesis_all_checks_with_and_without_the_token(
    outrider: OutriderFactory, tmp_path: Path
) -> None:
    await check_both_ways(outrider, tmp_path, examples=10, seed=20261125)


@pytest.mark.slow
async def test_schemathesis_all_checks_long(outrider: OutriderFactory, tmp_path: Path) -> None:
    await check_both_ways(outrider, tmp_path, examples=300, seed=None)


async def test_mutations_without_the_right_token_are_refused(
    outrider: OutriderFactory, tmp_path: Path
) -> None:
    guarded, open_ = start_admin(outrider, tmp_path / "a"), start_admin(outrider, tmp_path / "b", token=None)
    async with aiohttp.ClientSession() as session:
        for auth in (None, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN, f"Basic {TOKEN}"):
            headers = {} if auth is None else {"Authorization": auth}
            async with session.post(f"{guarded.admin_url}/experiments/{NAME}/promote", headers=headers) as r:
                assert r.status == 401, auth
                assert r.headers["WWW-Authenticate"] == 'Bearer realm="outrider-admin"'
                assert (await r.json())["code"] == "unauthorized"
        async with session.post(
            f"{open_.admin_url}/experiments/{NAME}/promote", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as r:
            assert r.status == 403  # no token configured: mutations are off, never open
            assert (await r.json())["code"] == "forbidden"
        assert [(await experiment(p.admin_url))["version"] for p in (guarded, open_)] == [1, 1]
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with session.post(f"{guarded.admin_url}/experiments/{NAME}/pause", headers=headers) as r:
            state = await r.json()
            assert (r.status, state["version"], state["phase"]) == (200, 2, "paused")
        async with session.get(f"{guarded.admin_url}/openapi.json") as r:
            assert await r.read() == OPENAPI_FILE.read_bytes()
