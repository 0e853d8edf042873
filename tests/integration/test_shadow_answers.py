"""Shadow answers as real model servers send them, through a real outrider process: class labels of shape
[N, 1] (stable and candidate answer in JSON, the shadow in the binary tensor extension, gzip-encoded, every
answer with a random `id`) are compared by value — each record has the exact number of rows that agree —,
the verdict gives the agreement with stable and with the candidate separately, and a request over
`spec.shadow.maxBodyBytes` is recorded as not mirrored."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from experiments.builder import Analysis, Canary, Compare, Guardrail, Shadow, Variant
from tests.integration.conftest import OutriderFactory, canary_doc
from tests.support.cli import analyzed, exported
from tests.support.http import scrape
from tests.support.oip_labels import labels
from tests.support.procs import Proc, start


def experiment(urls: dict[str, str]) -> str:
    """A canary at 50% that never advances, the shadow beside it, judged."""
    doc = canary_doc(
        urls["stable"],
        urls["candidate"],
        name="labels",
        prefix="/v2/models/labels",
        strategy=Canary((50,), min_requests_per_step=1000000),
        shadow=Shadow(sample=1.0, timeout="2s", max_body_bytes=4096, compare=Compare("oip-top1")),
        analysis=Analysis((Guardrail("error_rate", 1.2),), interval="200ms"),
    )
    return doc.adding(Variant.shadow(urls["shadow"])).yaml()


FLIPS = {"stable": 0, "candidate": 5, "shadow": 8}
"""Each server gives the next label to the rows whose value is a multiple of this (0: none)."""
REQUESTS = 199
"""With the one too large to mirror, 200 records: `outrider analyze` judges records by looks of 100."""
ROWS = 2


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, Proc]]:
    """stable and candidate answer JSON; the shadow answers binary tensors, gzip-encoded."""
    procs: dict[str, Proc] = {}
    try:
        for name, flip in FLIPS.items():
            extra = ["--binary", "--gzip"] if name == "shadow" else []
            cmd = [
                sys.executable,
                "-m",
                "tests.support.oip_labels",
                "--name",
                name,
                "--flip-every",
                str(flip),
            ]
            procs[name] = start([*cmd, *extra], tmp_path / f"{name}.log")
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def infer_body(values: list[int]) -> bytes:
    return orjson.dumps(
        {"inputs": [{"name": "x", "shape": [len(values), 1], "datatype": "INT64", "data": values}]}
    )


def agreeing_rows(values: list[int], primary: str) -> int:
    """Rows on which the shadow's label is the primary's."""
    ours = labels(values, FLIPS[primary])
    return sum(a == b for a, b in zip(ours, labels(values, FLIPS["shadow"]), strict=True))


async def send(proxy: Proc) -> dict[str, list[int]]:
    """One request too large to mirror (`req-too-large`), then REQUESTS requests of ROWS rows (values 0, 1,
    … in order); request id → its values."""
    sent: dict[str, list[int]] = {}
    async with aiohttp.ClientSession() as session:
        for i in range(-1, REQUESTS):
            values = list(range(i * ROWS, (i + 1) * ROWS)) if i >= 0 else list(range(10_000, 11_000))
            request_id = f"req-{i}" if i >= 0 else "req-too-large"
            headers = {"x-user-id": f"u{i}", "x-request-id": request_id, "content-type": "application/json"}
            url = f"{proxy.url}/v2/models/labels/infer"
            async with session.post(url, data=infer_body(values), headers=headers) as r:
                assert r.status == 200
                await r.read()
            sent[request_id] = values
            await asyncio.sleep(0.002)  # a steady pace, so that the shadow keeps up on a busy machine
    return sent


async def wait_stored(proxy: Proc, count: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 20
        while True:
            samples = await scrape(session, proxy.admin_url)
            if samples.get("outrider_outcomes_stored_total", 0) >= count or time.monotonic() > deadline:
                return samples
            await asyncio.sleep(0.1)


async def live_shadow_verdict(proxy: Proc) -> dict[str, Any]:
    """The shadow verdict of the controller's last look, once it has seen both primaries."""
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 20
        while True:
            async with session.get(f"{proxy.admin_url}/experiments/labels") as r:
                view = await r.json()
            verdict = ((view.get("analysis") or {}).get("snapshot") or {}).get("shadow", {}).get("shadow")
            both = bool(verdict) and set(verdict["by_primary"]) == {"stable", "candidate"}
            if both or time.monotonic() > deadline:
                return dict(verdict or {})
            await asyncio.sleep(0.2)


async def test_labels_in_binary_gzip_answers_are_compared_row_by_row_per_primary(
    servers: dict[str, Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    text = experiment({name: proc.url for name, proc in servers.items()})
    data_dir = tmp_path / "data"
    proxy = outrider(text, data_dir=data_dir)
    sent = await send(proxy)
    samples = await wait_stored(proxy, REQUESTS + 1)
    assert samples['outrider_shadow_dropped_total{reason="body_too_large"}'] == 1
    # The client does not wait for the copies: on a busy machine a few may find the shadow queue full.
    queue_full = samples.get('outrider_shadow_dropped_total{reason="queue_full"}', 0)
    assert samples["outrider_shadow_enqueued_total"] + queue_full == REQUESTS
    live = await live_shadow_verdict(proxy)
    assert set(live["by_primary"]) == {"stable", "candidate"}
    proxy.stop()

    records = {r["request_id"]: r for r in await exported(data_dir)}
    assert set(records) == set(sent)
    too_large = records.pop("req-too-large")
    assert too_large["shadows"] == [
        {
            "variant": "shadow",
            "status": 0,
            "error": "dropped:body_too_large",
            "latency_ms": 0.0,
            "skipped": "too_large",
        }
    ]
    agreed: dict[str, list[bool]] = {"stable": [], "candidate": []}
    for request_id, rec in records.items():
        (entry,) = rec["shadows"]
        if entry["error"] == "dropped:queue_full":
            continue
        expected = agreeing_rows(sent[request_id], rec["variant"])
        assert (entry["status"], entry["error"], entry.get("compare_error")) == (200, None, None), entry
        assert (entry["rows"], entry["rows_agree"], entry["agree"]) == (ROWS, expected, expected == ROWS)
        agreed[rec["variant"]].append(entry["agree"])
    assert len(agreed["stable"]) + len(agreed["candidate"]) + queue_full == REQUESTS
    assert min(len(agreed["stable"]), len(agreed["candidate"])) > 50  # both primaries answered plenty

    exported_lines = b"".join(orjson.dumps(r) + b"\n" for r in [too_large, *records.values()])
    (tmp_path / "e.jsonl").write_bytes(exported_lines)
    (tmp_path / "labels.yaml").write_text(text)
    verdict = (await analyzed(tmp_path / "e.jsonl", tmp_path / "labels.yaml"))["shadow"]["shadow"]
    share = {variant: sum(bits) / len(bits) for variant, bits in agreed.items()}
    assert share["stable"] != pytest.approx(share["candidate"], abs=0.05)  # two different references
    assert verdict["primary"] == "stable"
    assert verdict["agreement"]["estimate"] == share["stable"]
    assert verdict["agreement"]["n"] == len(agreed["stable"])
    for variant in ("stable", "candidate"):
        figures = verdict["by_primary"][variant]
        assert (figures["role"], figures["agreement"]["n"]) == (variant, len(agreed[variant]))
        assert figures["agreement"]["estimate"] == share[variant]
    assert verdict["skipped"] == {"too_large": 1}
