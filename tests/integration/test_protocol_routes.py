"""The protocols' paths through a real outrider: only inference is an outcome (health and metadata reads are
routed but not recorded), records say which method and path they were, KServe v1 `:predict` stays under its
prefix, server-level health reads reach a stable server when no experiment matches them, and a variant whose
server knows the model under another name or version gets the path rewritten."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson

from experiments.builder import Canary, ExperimentDoc, Outcomes, Variant
from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.cli import exported
from tests.support.procs import Proc


async def call(
    session: aiohttp.ClientSession, method: str, url: str, rid: str
) -> tuple[int, dict[str, object]]:
    headers = {"x-user-id": "u1", "x-request-id": rid}
    async with session.request(method, url, headers=headers, data=b"{}" if method == "POST" else None) as r:
        return r.status, orjson.loads(await r.read())


async def test_only_inference_is_recorded_with_its_method_and_path(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    v2 = canary_yaml(stable.url, candidate.url, name="v2", prefix="/v2/models/digits", steps=(50,))
    v1 = canary_yaml(stable.url, candidate.url, name="v1", prefix="/v1/models/digits", steps=(50,))
    data_dir = tmp_path / "data"
    proxy = outrider(v2, v1, data_dir=data_dir)
    base = proxy.url
    async with aiohttp.ClientSession() as s:
        calls = {
            "meta": ("GET", f"{base}/v2/models/digits"),
            "ready": ("GET", f"{base}/v2/models/digits/ready"),
            "infer": ("POST", f"{base}/v2/models/digits/infer?trace=1"),
            "versioned": ("POST", f"{base}/v2/models/digits/versions/3/infer"),
            "predict": ("POST", f"{base}/v1/models/digits:predict"),
            "v1-status": ("GET", f"{base}/v1/models/digits"),
            "health": ("GET", f"{base}/v2/health/ready"),  # matches no experiment: a stable server answers
            "server": ("GET", f"{base}/v2"),
        }
        answers = {rid: await call(s, method, url, rid) for rid, (method, url) in calls.items()}
        missing_status, _ = await call(s, "GET", f"{base}/v3/health/ready", "nothing")
    assert all(status == 200 for status, _ in answers.values()), answers
    assert answers["health"][1]["name"] == "stable"
    assert answers["health"][1]["path"] == "/v2/health/ready"
    assert answers["server"][1]["name"] == "stable"
    assert missing_status == 404
    proxy.stop()
    records = {str(r["request_id"]): r for r in await exported(data_dir)}
    assert set(records) == {"infer", "versioned", "predict"}
    assert (records["infer"]["method"], records["infer"]["path"]) == ("POST", "/v2/models/digits/infer")
    assert records["versioned"]["path"] == "/v2/models/digits/versions/3/infer"
    assert (records["predict"]["experiment"], records["predict"]["path"]) == (
        "v1",
        "/v1/models/digits:predict",
    )


async def test_each_variant_is_asked_for_its_own_model_name_and_version(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    variants = (
        Variant.stable(stable.url, version="1"),
        Variant.candidate(candidate.url, model="digits-int8", version="2"),
    )
    renamed = ExperimentDoc("renamed", variants, Canary((50,)), prefix="/v2/models/digits")
    proxy = outrider(renamed.yaml(), data_dir=tmp_path / "data")
    seen: dict[str, set[str]] = {}
    async with aiohttp.ClientSession() as s:
        for i in range(40):
            headers = {"x-user-id": f"u{i}"}
            async with s.post(f"{proxy.url}/v2/models/digits/infer?q=1", data=b"{}", headers=headers) as r:
                doc = orjson.loads(await r.read())
                seen.setdefault(str(doc["name"]), set()).add(str(doc["path"]))
    assert seen == {
        "stable": {"/v2/models/digits/versions/1/infer?q=1"},  # the query goes along
        "candidate": {"/v2/models/digits-int8/versions/2/infer?q=1"},
    }
    proxy.stop()
    records = await exported(tmp_path / "data")
    assert {r["path"] for r in records} == {
        "/v2/models/digits/infer"
    }  # the record keeps what the client asked


def by_header(stable: str, candidate: str, name: str, steps: tuple[float, ...], **match: Any) -> str:
    """A Seldon-style route on a shared prefix, told apart by `host` or `headers`; 404s count as errors."""
    variants = (Variant.stable(stable), Variant.candidate(candidate))
    outcomes = Outcomes(error_statuses=("5xx", "404"))
    doc = ExperimentDoc(name, variants, Canary(steps), prefix="/api/v1.0/predictions", outcomes=outcomes)
    return doc.with_(**match).yaml()


async def test_experiments_share_a_prefix_by_header_or_host_and_404s_count_as_errors(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = upstreams
    iris = by_header(stable.url, candidate.url, "iris", (100,), headers={"seldon-model": "iris"})
    wine = by_header(stable.url, candidate.url, "wine", (1,), host="wine.example")
    proxy = outrider(iris, wine, data_dir=tmp_path / "data")
    path = "/api/v1.0/predictions"
    async with aiohttp.ClientSession() as s:
        cases = {
            "iris": {"seldon-model": "iris"},
            "wine": {"Host": "WINE.example:8080"},
            "other": {"seldon-model": "other"},
            "missing": {"seldon-model": "iris"},
        }
        statuses = {}
        for rid, extra in cases.items():
            url = f"{proxy.url}{path}" + ("/status/404" if rid == "missing" else "")
            headers = {"x-user-id": "u7", "x-request-id": rid, **extra}
            async with s.post(url, data=b"{}", headers=headers) as r:
                statuses[rid] = (r.status, r.headers.get("x-outrider-variant"))
    assert statuses["iris"] == (200, "candidate")  # iris' canary is at 100%
    assert statuses["wine"][0] == 200
    assert statuses["other"][0] == 404  # no experiment has this header value, no default upstream
    assert statuses["missing"] == (404, "candidate")  # the upstream's 404, answered as it was
    proxy.stop()
    records = {str(r["request_id"]): r for r in await exported(tmp_path / "data")}
    assert records["iris"]["experiment"] == "iris"
    assert records["wine"]["experiment"] == "wine"
    assert "other" not in records
    assert (records["missing"]["status"], records["missing"]["error"]) == (404, "upstream_4xx")
    assert records["iris"]["error"] is None
