"""The admin port of a real outrider: health, readiness, experiments, metrics labels; and start-up facts."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiohttp

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.http import scrape
from tests.support.procs import Proc, outrider_cmd


async def test_admin_endpoints(upstreams: tuple[Proc, Proc], outrider: OutriderFactory) -> None:
    stable, candidate = upstreams
    proxy = outrider(canary_yaml(stable.url, candidate.url, name="digits-canary", steps=(5, 10, 25, 50)))
    assert proxy.ready["runtime"]["http_parser"] == "c"
    assert proxy.ready["runtime"]["loop"] == "uvloop"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{proxy.admin_url}/healthz") as r:
            assert r.status == 200
        async with session.get(f"{proxy.admin_url}/readyz") as r:
            assert r.status == 200
            assert (await r.json()) == {"ready": True}
        async with session.get(f"{proxy.admin_url}/experiments") as r:
            listing = await r.json()
        assert [e["name"] for e in listing["experiments"]] == ["digits-canary"]
        async with session.get(f"{proxy.admin_url}/experiments/digits-canary") as r:
            exp = await r.json()
        assert exp["weights"] == {"stable": 95.0, "candidate": 5.0}
        assert exp["phase"] == "progressing"
        assert exp["version"] == 1
        assert exp["strategy"] == {"kind": "canary", "steps": [5, 10, 25, 50], "minRequestsPerStep": 0}
        assert [(v["name"], v["role"]) for v in exp["variants"]] == [
            ("stable", "stable"),
            ("candidate", "candidate"),
        ]
        async with session.get(f"{proxy.admin_url}/experiments/nope") as r:
            assert r.status == 404
        for user in ("a", "b", "c"):
            async with session.post(f"{proxy.url}/v2/x", data=b"{}", headers={"x-user-id": user}) as r:
                assert r.status == 200
        async with session.post(f"{proxy.url}/v2/reset", data=b"{}", headers={"x-user-id": "a"}) as r:
            assert r.status == 502
            variant = r.headers["x-outrider-variant"]
        async with session.get(f"{proxy.url}/unrouted") as r:
            assert r.status == 404
        samples = await scrape(session, proxy.admin_url)
    ok = sum(
        v
        for k, v in samples.items()
        if k.startswith("outrider_requests_total{")
        and 'experiment="digits-canary"' in k
        and 'response_code="200"' in k
    )
    assert ok == 3
    labels = f'destination_version="{variant}",experiment="digits-canary",response_code="502"'
    bad = f"outrider_requests_total{{{labels}}}"
    assert samples[bad] == 1
    assert (
        samples['outrider_requests_total{destination_version="none",experiment="",response_code="404"}'] == 1
    )
    assert any(k.startswith("outrider_request_duration_seconds_bucket{") for k in samples)


BAD = """\
apiVersion: outrider.dev/v1alpha1
kind: Experiment
metadata:
  name: split
spec:
  match:
    pathPrefix: /v2
  variants:
    - {name: stable, role: stable, upstream: "ftp://nowhere"}
    - {name: candidate, role: candidate, upstream: "http://127.0.0.1:1"}
  assignment:
    unit: header:x-user-id
    sal: salt-1
  strategy:
    canary:
      steps: [50, 10]
"""


async def test_run_refuses_a_bad_config_with_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)  # literal: the positions of its problems are the subject
    proc = await asyncio.to_thread(
        subprocess.run,
        outrider_cmd("run", "-c", str(bad), "--data-dir", str(tmp_path / "d")),
        capture_output=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.decode().splitlines()
    prefixes = [line.split(": ", 2)[:2] for line in lines]
    assert [f"{bad}:9:46", "spec.variants.0.upstream"] in prefixes, lines
    assert [f"{bad}:16:19", "spec.strategy.canary.steps.1"] in prefixes, lines
    assert [f"{bad}:13:5", "spec.assignment.sal"] in prefixes, lines
    assert [f"{bad}:12:5", "spec.assignment.salt"] in prefixes, lines
    validate = await asyncio.to_thread(
        subprocess.run, outrider_cmd("validate", str(bad)), capture_output=True
    )
    assert validate.returncode == 2
    assert validate.stderr == proc.stderr
