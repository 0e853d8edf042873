"""`outrider status` and `outrider promote|rollback|pause|resume` against a real outrider: the table shows the
live state and request counts; a mutation without the right token is refused (exit 3) and changes nothing;
with it, the state changes; unknown experiments exit 4, a phase that forbids the action 5, no sidecar 1."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.cli import main
from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.procs import Proc, outrider_cmd

TOKEN = "s3cret-admin-token"


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `outrider ARGV` run here (in a thread: it runs its own loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def state(proxy: Proc) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{proxy.admin_url}/experiments/split") as r:
        doc: dict[str, Any] = await r.json()
        return doc


async def send(proxy: Proc, n: int) -> None:
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            async with session.post(f"{proxy.url}/v2/x", data=b"{}", headers={"x-user-id": f"u{i}"}) as r:
                assert r.status == 200


def table_row(out: str, name: str) -> list[str]:
    """The cells of `name`'s row (cells are separated by two or more spaces)."""
    row = next(line for line in out.splitlines() if line.startswith(name + " "))
    return re.split(r"\s{2,}", row.strip())


async def test_status_prints_the_live_state_and_watches(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    stable, candidate = upstreams
    proxy = outrider(canary_yaml(stable.url, candidate.url), args=("--drain-delay", "0"))
    await send(proxy, 40)
    code, out, _ = await cli(capsys, "status", "--admin", proxy.admin_url)
    assert code == 0
    head = "EXPERIMENT PHASE STEP WEIGHTS REQUESTS LAST DECISION LAST LOOK"
    assert out.splitlines()[0].split() == head.split()
    name, phase, step, weights, requests, decision, look = table_row(out, "split")
    assert (name, phase, step, weights, decision, look) == (
        "split",
        "progressing",
        "1/3",
        "stable 90%, candidate 10%",
        "—",
        "—",
    )
    counts = dict(part.rsplit(" ", 1) for part in requests.split(", "))
    assert sum(int(v) for v in counts.values()) == 40
    assert set(counts) <= {"stable", "candidate"}

    code, one, _ = await cli(capsys, "status", "split", "--admin", proxy.admin_url.removeprefix("http://"))
    assert code == 0
    assert table_row(one, "split") == table_row(out, "split")
    code, _, err = await cli(capsys, "status", "nope", "--admin", proxy.admin_url)
    assert (code, err.strip()) == (4, "outrider status: no experiment named 'nope'")

    code, frames, _ = await cli(
        capsys, "status", "-w", "--count", "3", "--interval", "0.05", "--admin", proxy.admin_url
    )
    assert code == 0
    assert frames.count("outrider status · ") == 3
    assert frames.count("EXPERIMENT") == 3

    code, _, err = await cli(capsys, "pause", "split", "--admin", proxy.admin_url)
    assert code == 3  # this sidecar has no admin token: mutations are disabled, not open
    assert "mutations are disabled" in err


async def test_mutations_need_the_token_and_change_the_state(
    upstreams: tuple[Proc, Proc],
    outrider: OutriderFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stable, candidate = upstreams
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    proxy = outrider(
        canary_yaml(stable.url, candidate.url),
        args=("--admin-token-file", str(token_file), "--drain-delay", "0"),
    )
    admin = ("--admin", proxy.admin_url)
    monkeypatch.delenv("OUTRIDER_ADMIN_TOKEN", raising=False)
    code, out, err = await cli(capsys, "promote", "split", *admin)
    assert (code, out) == (3, "")
    assert "--token-file" in err
    monkeypatch.setenv("OUTRIDER_ADMIN_TOKEN", "wrong")
    code, _, _ = await cli(capsys, "rollback", "split", *admin)
    assert code == 3
    before = await state(proxy)
    assert (before["phase"], before["version"]) == ("progressing", 1)  # refusals changed nothing

    code, out, _ = await cli(capsys, "pause", "split", *admin, "--token-file", str(token_file))
    assert (code, out.split(" (")[0]) == (0, "split: paused")
    monkeypatch.setenv("OUTRIDER_ADMIN_TOKEN", TOKEN)
    code, out, _ = await cli(capsys, "resume", "split", *admin)
    assert (code, out.split(" (")[0]) == (0, "split: progressing")
    code, out, _ = await cli(capsys, "rollback", "split", *admin)
    assert (code, out.strip()) == (0, "split: rolled_back (step —; stable 100%; v4)")
    after = await state(proxy)
    assert (after["phase"], after["weights"]) == ("rolled_back", {"stable": 100.0})

    code, _, err = await cli(capsys, "promote", "split", *admin)
    assert code == 5
    assert "already rolled_back" in err
    code, _, _ = await cli(capsys, "promote", "nope", *admin)
    assert code == 4
    code, out, _ = await cli(capsys, "status", *admin)
    assert table_row(out, "split")[5] == "manual rollback (admin API)"


def test_the_installed_command_exits_1_without_a_sidecar_and_a_watch_ends_on_ctrl_c() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status = outrider_cmd("status", "--admin", f"127.0.0.1:{port}")
    result = subprocess.run(status, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"outrider status: cannot reach the admin API at http://127.0.0.1:{port}/"
    )

    with subprocess.Popen(  # a watch outlives an unreachable sidecar (it may be restarting) until Ctrl-C
        [*status, "-w", "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # not inherited as ignored
    ) as watch:
        assert watch.stdout is not None
        try:
            assert watch.stdout.readline() == b"\n"  # off a terminal, frames are separated, not cleared
            assert watch.stdout.readline().startswith(b"outrider status \xc2\xb7 ")  # the first frame
            watch.send_signal(signal.SIGINT)
            assert watch.wait(timeout=10) == 0
        finally:
            if watch.poll() is None:
                watch.kill()
