"""gRPC shadows end to end: tritonclient.grpc calls outrider's gRPC port, stable (the reference server's gRPC
port) answers, and every ModelInfer is copied to the shadows' `grpcUpstream`. The answers are compared as
ModelInferResponses (raw little-endian FP32 scores): each record has, per shadow, exactly the rows on which
the shadow's top class is stable's (measured by calling both servers directly), `outrider analyze` reports
that agreement, a shadow without a gRPC address is recorded as skipped, and a shadow 150 ms slower than
stable costs the client nothing."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient

from experiments.builder import Compare, ExperimentDoc, Shadow, ShadowOnly, Variant
from modelserver.testset import read_test_set
from tests.integration.conftest import OutriderFactory
from tests.support.cli import analyzed, exported
from tests.support.procs import Proc, outrider_cmd, start


def experiment(servers: dict[str, Proc]) -> str:
    """Shadow-only: stable serves, two shadows over gRPC and HTTP, one (`restonly`) over HTTP alone."""
    stable, weak, int8 = servers["stable"], servers["weak"], servers["int8"]
    variants = (
        Variant.stable(stable.url, grpc_upstream=stable.ready["grpc"]),
        Variant.shadow(weak.url, "weak", grpc_upstream=weak.ready["grpc"]),
        Variant.shadow(int8.url, "int8", grpc_upstream=int8.ready["grpc"]),
        Variant.shadow(int8.url, "restonly"),
    )
    copies = Shadow(sample=1.0, timeout="3s", compare=Compare("oip-top1"))
    return ExperimentDoc(
        "grpc-shadow", variants, ShadowOnly(), prefix="/v2/models/digits", shadow=copies
    ).yaml()


MODELS = {"stable": "digits.onnx", "weak": "digits-weak.onnx", "int8": "digits-int8.onnx"}
SLOW_MS = {"weak": 150}
"""The weak shadow answers this much later than stable: the client must not wait for it."""
REQUESTS = 100
"""`outrider analyze` looks at records 100 at a time."""
ROWS = 2
PACE_S = 0.01
"""Between calls: the slow shadow's copies (≈10 in flight) then fit the dispatcher's 16 workers, so hardly
any copy is dropped for a full queue — and the client's calls are timed apart from the pauses."""


@pytest.fixture
def servers(models_dir: Path, tmp_path: Path) -> Iterator[dict[str, Proc]]:
    procs: dict[str, Proc] = {}
    try:
        for name, model in MODELS.items():
            args = ["--model", str(models_dir / model), "--name", "digits", "--port", "0", "--grpc-port", "0"]
            args += ["--latency-ms", str(SLOW_MS.get(name, 0))]
            procs[name] = start(outrider_cmd("serve-model", *args), tmp_path / f"{name}.log")
        yield procs
    finally:
        for proc in procs.values():
            proc.stop()


def top_classes(client: grpcclient.InferenceServerClient, rows: np.ndarray, rid: str) -> list[int]:
    """The top class of each row, as `client`'s server answers them."""
    tensor = grpcclient.InferInput("input", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows.astype(np.float32))
    result = client.infer(
        "digits", [tensor], headers={"x-user-id": rid, "x-request-id": rid}, client_timeout=10
    )
    scores = result.as_numpy(result.get_response().outputs[0].name)
    return [int(i) for i in np.argmax(scores, axis=1)]


def batches(models_dir: Path) -> list[np.ndarray]:
    x = np.asarray(read_test_set(models_dir / "test_set.json").x, dtype=np.float32)
    return [x[i * ROWS : (i + 1) * ROWS] for i in range(REQUESTS)]


def expected_rows(servers: dict[str, Proc], inputs: list[np.ndarray]) -> dict[str, list[int]]:
    """Per shadow, the rows of each request on which it gives stable's top class (servers called directly)."""
    clients = {name: grpcclient.InferenceServerClient(url=p.ready["grpc"]) for name, p in servers.items()}
    try:
        answers = {
            name: [top_classes(c, rows, f"direct-{i}") for i, rows in enumerate(inputs)]
            for name, c in clients.items()
        }
    finally:
        for c in clients.values():
            c.close()
    return {
        name: [
            sum(a == b for a, b in zip(mine, ref, strict=True))
            for mine, ref in zip(answers[name], answers["stable"], strict=True)
        ]
        for name in ("weak", "int8")
    }


def through_outrider(address: str, inputs: list[np.ndarray]) -> list[float]:
    """Each request once through outrider; the client's latency of each (ms)."""
    client = grpcclient.InferenceServerClient(url=address)
    latencies = []
    try:
        for i, rows in enumerate(inputs):
            started = time.perf_counter()
            top_classes(client, rows, f"req-{i}")
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(PACE_S)
    finally:
        client.close()
    return latencies


async def test_grpc_calls_are_mirrored_and_compared_without_waiting_for_the_shadows(
    servers: dict[str, Proc], outrider: OutriderFactory, models_dir: Path, tmp_path: Path
) -> None:
    text = experiment(servers)
    data_dir = tmp_path / "data"
    proxy = outrider(text, data_dir=data_dir, args=("--grpc-listen", "127.0.0.1:0"))
    inputs = batches(models_dir)
    expected = await asyncio.to_thread(expected_rows, servers, inputs)
    latencies = await asyncio.to_thread(through_outrider, proxy.ready["grpc"], inputs)
    proxy.stop()  # the pairs still waiting for a shadow are completed before the sink closes

    records = {str(r["request_id"]): r for r in await exported(data_dir)}
    assert set(records) == {f"req-{i}" for i in range(REQUESTS)}
    agreed: dict[str, list[bool]] = {"weak": [], "int8": []}
    shadow_ms = []
    for i in range(REQUESTS):
        record = records[f"req-{i}"]
        assert (record["variant"], record["status"], record["error"]) == ("stable", 200, None)
        entries = {e["variant"]: e for e in record["shadows"]}
        assert entries["restonly"]["error"] == "dropped:no_grpc_upstream"
        assert entries["restonly"]["skipped"] == "no_grpc_upstream"
        for name in ("weak", "int8"):
            entry = entries[name]
            if entry["error"] == "dropped:queue_full":  # the client never waits: a busy machine may drop some
                continue
            assert (entry["status"], entry["error"], entry.get("compare_error")) == (200, None, None), entry
            assert (entry["rows"], entry["rows_agree"]) == (ROWS, expected[name][i])
            agreed[name].append(entry["agree"])
        shadow_ms.append(entries["weak"]["latency_ms"])
    assert min(len(agreed["weak"]), len(agreed["int8"])) >= REQUESTS * 0.8
    assert 0 < sum(agreed["weak"]) < len(agreed["weak"])  # the weak model differs on some rows, not all
    assert all(agreed["int8"])

    # The weak shadow took ≥ 150 ms per copy; the client's calls did not wait for it.
    assert statistics.median(s for s in shadow_ms if s > 0) >= SLOW_MS["weak"]
    assert statistics.median(latencies) < SLOW_MS["weak"] / 3, latencies
    assert statistics.median(r["latency_ms"] for r in records.values()) < SLOW_MS["weak"] / 3

    (tmp_path / "e.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records.values()))
    (tmp_path / "x.yaml").write_text(text)
    verdicts = (await analyzed(tmp_path / "e.jsonl", tmp_path / "x.yaml"))["shadow"]
    for name in ("weak", "int8"):
        agreement = verdicts[name]["agreement"]
        assert agreement["n"] == len(agreed[name])
        assert agreement["estimate"] == sum(agreed[name]) / len(agreed[name])
    assert verdicts["restonly"]["skipped"] == {"no_grpc_upstream": REQUESTS}
