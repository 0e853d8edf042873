"""Shadow isolation with real processes: whatever a shadow does (hang, 500, garbage, reset, slow body), the
client gets the same bytes as without any shadow, each fault is counted by class, and every outcome record
carries its paired shadow entry."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest

from experiments.builder import Compare, Shadow, Variant
from tests.integration.conftest import OutriderFactory, canary_doc
from tests.support.cli import exported
from tests.support.http import scrape
from tests.support.procs import Proc, outrider_cmd, start
from tests.support.wait import eventually

REQUESTS = 20


def with_shadow(stable: str, candidate: str, shadow: str | None, kind: str = "none") -> str:
    doc = canary_doc(stable, candidate, steps=(10,))
    if shadow is None:
        return doc.yaml()
    copies = Shadow(sample=1.0, timeout="300ms", compare=Compare(kind))
    return doc.adding(Variant.shadow(shadow)).with_(shadow=copies).yaml()


async def client_view(proxy: Proc) -> list[tuple[int, str, bytes]]:
    """(status, variant, body) of fixed requests: same ids and users every run, so bodies compare."""
    out = []
    async with aiohttp.ClientSession() as session:
        for i in range(REQUESTS):
            headers = {
                "x-user-id": f"u{i}",
                "x-request-id": f"req-{i}",
                "content-type": "application/json",
                "Host": "models.local",
            }
            async with session.post(f"{proxy.url}/v2/models/m/infer", data=b'{"x": 1}', headers=headers) as r:
                out.append((r.status, r.headers["x-outrider-variant"], await r.read()))
    return out


@pytest.fixture(scope="module")
def baseline(
    upstreams: tuple[Proc, Proc], tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[int, str, bytes]]:
    stable, candidate = upstreams
    tmp = tmp_path_factory.mktemp("baseline")
    (tmp / "e.yaml").write_text(with_shadow(stable.url, candidate.url, None))
    proc = start(
        outrider_cmd(
            "run",
            "-c",
            str(tmp / "e.yaml"),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp / "data"),
        ),
        tmp / "o.log",
    )
    try:
        return asyncio.run(client_view(proc))
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("fault", "result"),
    [
        ("hang", "timeout"),
        ("500", "upstream_5xx"),
        ("garbage", "ok"),
        ("reset", "upstream_reset"),
        ("slow-body", "timeout"),
    ],
)
async def test_a_broken_shadow_never_changes_what_the_client_gets(
    fault: str,
    result: str,
    baseline: list[tuple[int, str, bytes]],
    upstreams: tuple[Proc, Proc],
    outrider: OutriderFactory,
    tmp_path: Path,
) -> None:
    stable, candidate = upstreams
    shadow = start(
        [sys.executable, "-m", "tests.support.upstream", "--name", "shadow", "--fault", fault],
        tmp_path / "shadow.log",
    )
    try:
        proxy = outrider(with_shadow(stable.url, candidate.url, shadow.url), data_dir=tmp_path / "data")
        assert await client_view(proxy) == baseline
        async with aiohttp.ClientSession() as session:

            async def settled() -> dict[str, float] | None:
                """Every copy answered or dropped, every record stored."""
                samples = await scrape(session, proxy.admin_url)
                done = samples.get(f'outrider_shadow_results_total{{result="{result}"}}', 0.0)
                done += samples.get('outrider_shadow_dropped_total{reason="circuit_open"}', 0.0)
                stored = samples.get("outrider_outcomes_stored_total", 0.0)
                return samples if done == REQUESTS and stored == REQUESTS else None

            samples = await eventually(settled, 10.0)
        # A shadow that fails fast opens its circuit after 5 failures: later copies are dropped, not sent.
        called = samples[f'outrider_shadow_results_total{{result="{result}"}}']
        opened = samples['outrider_shadow_dropped_total{reason="circuit_open"}']
        assert called >= 5
        assert called + opened == REQUESTS
        assert samples["outrider_shadow_eligible_total"] == REQUESTS
        assert samples["outrider_shadow_enqueued_total"] == called
        assert samples["outrider_outcomes_stored_total"] == REQUESTS
        proxy.stop()
    finally:
        shadow.stop()
    records = await exported(tmp_path / "data")
    assert len(records) == REQUESTS
    for rec in records:
        (entry,) = rec["shadows"]
        assert entry["variant"] == "shadow"
        assert entry["error"] in ((None if result == "ok" else result), "dropped:circuit_open")
        assert entry["latency_ms"] >= 0


async def test_paired_records_compare_outputs(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    shadow = start(
        [sys.executable, "-m", "tests.support.upstream", "--name", "shadow"], tmp_path / "shadow.log"
    )
    try:
        proxy = outrider(
            with_shadow(stable.url, candidate.url, shadow.url, kind="json-exact"), data_dir=tmp_path / "data"
        )
        await client_view(proxy)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{proxy.url}/v2/models/m/metadata") as r:  # not an inference POST
                assert r.status == 200

            async def settled() -> dict[str, float] | None:
                """Every copy answered, every record stored (the POSTs', with their comparison; the GET's)."""
                samples = await scrape(session, proxy.admin_url)
                answered = samples.get('outrider_shadow_results_total{result="ok"}', 0.0)
                stored = samples.get("outrider_outcomes_stored_total", 0.0)
                return samples if answered == REQUESTS and stored == REQUESTS + 1 else None

            samples = await eventually(settled, 10.0)
        assert samples["outrider_shadow_eligible_total"] == REQUESTS  # counted on arrival: the GET is not
        proxy.stop()
    finally:
        shadow.stop()
    records = await exported(tmp_path / "data")
    paired = [r for r in records if r["shadows"]]
    assert len(paired) == REQUESTS
    for rec in paired:
        (entry,) = rec["shadows"]
        assert entry["status"] == 200
        assert entry["agree"] is False  # the echo differs: name, Host with -shadow, x-outrider-shadow
