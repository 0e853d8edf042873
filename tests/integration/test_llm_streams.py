"""LLM streams end to end with real processes: the reference text server streaming through a real outrider.

The client gets the same completion as going direct; each record carries ttft_ms, itl_ms, output_tokens and
finish_reason (streamed with and without `usage`, whole answers without the timings, `GET /v1/models` not
recorded); a `text` shadow agrees with an identical generator; a ttft guardrail rolls back a candidate whose
first token comes later while its whole answer does not, and `outrider analyze` on the export agrees."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from experiments.builder import Analysis, Compare, Guardrail, Mirror, Shadow, Variant
from experiments.openai_stream import CompletionStream
from proxy.demo.llm import LlmTally, drive_llm
from proxy.demo.load import Load
from tests.integration.conftest import OutriderFactory, canary_doc, canary_yaml
from tests.support.cli import analyzed, exported
from tests.support.procs import Proc, outrider_cmd, start

SHADOW = Shadow(
    sample=1.0,
    timeout="5s",
    mirror=Mirror(path_suffixes=("/v1/chat/completions", "/v1/completions")),
    compare=Compare("text"),
)
GUARDS = Analysis(
    (Guardrail("error_rate", 1.2), Guardrail("latency_gmean", 1.10), Guardrail("ttft_gmean", 1.10)),
    interval="200ms",
    max_requests=20000,
)


def text_server(log: Path, ttft_ms: float, itl_ms: float) -> Proc:
    cmd = ["serve-model", "--port", "0", "--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms)]
    return start(outrider_cmd(*cmd), log)


@pytest.fixture
def servers(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[list[Proc]]:
    procs = [text_server(tmp_path / f"text-{i}.log", *knobs) for i, knobs in enumerate(request.param)]
    yield procs
    for proc in procs:
        proc.stop()


async def complete(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[str, int]:
    """POST a completion; the assembled text and the response status."""
    tap = CompletionStream(keep_text=True)
    async with session.post(url, data=orjson.dumps(body), headers={"x-user-id": "u1"}) as r:
        if body.get("stream"):
            async for chunk in r.content.iter_any():
                tap.feed(chunk)
            tap.close()
            return tap.text(), r.status
        doc = orjson.loads(await r.read())
    choice = doc["choices"][0]
    return choice["message"]["content"] if "message" in choice else choice["text"], r.status


async def records_of(data_dir: Path, n: int, seconds: float = 20.0) -> list[dict[str, Any]]:
    """The exported records once there are `n` (the last ones are written when their shadows answered)."""
    deadline = time.monotonic() + seconds
    while True:
        found = await exported(data_dir) if (data_dir / "outrider.db").exists() else []
        if len(found) >= n or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


CHAT = {"model": "tiny-llm", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}


@pytest.mark.parametrize("servers", [[(30, 5), (30, 5), (0, 0)]], indirect=True)
async def test_streams_pass_through_and_records_carry_the_token_fields(
    servers: list[Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate, shadow = servers
    doc = canary_doc(stable.url, candidate.url, name="llm", prefix="/v1", steps=(50,), shadow=SHADOW)
    proxy = outrider(doc.adding(Variant.shadow(shadow.url, "twin")).yaml(), data_dir=tmp_path / "data")
    calls = [
        ("/v1/chat/completions", {**CHAT, "stream": True, "stream_options": {"include_usage": True}}),
        ("/v1/completions", {"prompt": "once", "max_tokens": 8, "stream": True}),
        ("/v1/chat/completions", CHAT),
    ]
    async with aiohttp.ClientSession() as session:
        for path, body in calls:
            via, direct = (
                await complete(session, proxy.url + path, body),
                await complete(session, stable.url + path, body),
            )
            assert via == direct
            assert len(via[0].split()) == 8
        async with session.get(f"{proxy.url}/v1/models") as r:
            assert (await r.json())["data"][0]["id"] == "tiny-llm"
    recs = await records_of(tmp_path / "data", 3)
    assert [r["path"] for r in recs] == [path for path, _ in calls]  # GET /v1/models is not an outcome
    chat, legacy, whole = recs
    assert 30 <= chat["ttft_ms"] < 30 + 200
    assert 3 <= chat["itl_ms"] < 30
    assert chat["ttft_ms"] <= chat["latency_ms"]
    assert (chat["output_tokens"], chat["finish_reason"], chat["events"]) == (8, "length", 12)
    assert (legacy["output_tokens"], legacy["finish_reason"]) == (8, "length")  # no usage: the content events
    assert legacy["ttft_ms"] is not None
    assert (whole["ttft_ms"], whole["itl_ms"], whole["output_tokens"], whole["finish_reason"]) == (
        None, None, 8, "length",
    )  # fmt: skip
    for rec in recs:
        (entry,) = rec["shadows"]
        assert (entry["variant"], entry["agree"], entry["overlap"]) == ("twin", True, 1.0), rec


# stable: first token at 10 ms, 15 more 4 ms apart (70 ms); candidate: 25 ms, then 3 ms apart (70 ms)
@pytest.mark.parametrize("servers", [[(10, 4), (25, 3)]], indirect=True)
async def test_a_ttft_guardrail_rolls_back_a_late_first_token_and_analyze_agrees(
    servers: list[Proc], outrider: OutriderFactory, tmp_path: Path
) -> None:
    stable, candidate = servers
    text = canary_yaml(
        stable.url, candidate.url, name="ttft", prefix="/v1", steps=(50,), analysis=GUARDS, unit="request"
    )
    data_dir = tmp_path / "data"
    proxy = outrider(text, data_dir=data_dir)
    tally, stop = LlmTally(), asyncio.Event()
    load = Load(users=1000, concurrency=16, max_seconds=60)
    driving = asyncio.get_running_loop().create_task(
        drive_llm(f"{proxy.url}/v1/chat/completions", load, stop, tally)
    )
    state: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        while not driving.done():
            async with session.get(f"{proxy.admin_url}/experiments/ttft") as r:
                state = (await r.json())["state"]
            if state["phase"] != "progressing":
                break
            await asyncio.sleep(0.2)
    stop.set()
    await driving
    assert state["phase"] == "rolled_back", state
    decision = state["history"][-1]
    assert decision["reason"].startswith("ROLLBACK: ttft_gmean: harm"), decision
    assert "latency_gmean" not in decision["reason"]
    proxy.stop()
    export, config = tmp_path / "export.jsonl", tmp_path / "ttft.yaml"
    export.write_bytes(b"\n".join(orjson.dumps(r) for r in await exported(data_dir)))
    config.write_text(text)
    result = await analyzed(export, config)
    assert (result["decision"], result["decided_at"]) == ("ROLLBACK", decision["at_candidate_requests"])
    ttft = {m["name"]: m for m in result["metrics"]}["ttft_gmean"]
    assert ttft["estimate"] > 1.5
