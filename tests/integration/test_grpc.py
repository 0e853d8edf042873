"""gRPC end to end with tritonclient.grpc: the reference model server's gRPC port, outrider's `--grpc-listen`
in front of two of them. Health and metadata through outrider, sticky per-user assignment from metadata,
one outcome record per call with its request id, client errors not counted as the model's, and a candidate
failing 5× as often rolled back with no call reaching it a second after the decision. ModelStreamInfer passes
through to the stable server, admitted by auth on its first message, never recorded."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from experiments.builder import Analysis, Canary, ExperimentDoc, Guardrail, Variant
from modelserver.testset import read_test_set
from tests.integration.conftest import OutriderFactory
from tests.support.cli import exported
from tests.support.procs import Proc, outrider_cmd, start

ANALYSIS = Analysis(
    (Guardrail("error_rate", 1.2),),
    interval="200ms",
    alpha=0.05,
    max_requests=100000,
    on_inconclusive="rollback",
)


def grpc_model_server(models: Path, log: Path, model: str, error_rate: float, seed: int) -> Proc:
    args = ["--model", str(models / model), "--name", "digits", "--port", "0", "--grpc-port", "0"]
    return start(
        outrider_cmd("serve-model", *args, "--error-rate", str(error_rate), "--seed", str(seed)), log
    )


@pytest.fixture
def servers(models_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Proc, Proc]]:
    stable_rate, candidate_rate = request.param
    procs = (
        grpc_model_server(models_dir, tmp_path / "stable.log", "digits.onnx", stable_rate, 1),
        grpc_model_server(models_dir, tmp_path / "candidate.log", "digits-int8.onnx", candidate_rate, 2),
    )
    yield procs
    for proc in procs:
        proc.stop()


def experiment(
    stable: Proc, candidate: Proc, steps: tuple[float, ...], analysis: Analysis | None = None
) -> str:
    variants = (
        Variant.stable(stable.url, grpc_upstream=stable.ready["grpc"]),
        Variant.candidate(candidate.url, grpc_upstream=candidate.ready["grpc"]),
    )
    strategy = Canary(steps, min_requests_per_step=0)
    doc = ExperimentDoc(
        "grpc-split", variants, strategy, prefix="/v2/models/digits", salt="grpc", analysis=analysis
    )
    return doc.yaml()


def grpc_proxy(
    outrider: OutriderFactory,
    servers: tuple[Proc, Proc],
    data_dir: Path,
    steps: tuple[float, ...],
    analysis: Analysis | None = None,
) -> Proc:
    """outrider with a gRPC port in front of the two servers."""
    text = experiment(*servers, steps, analysis)
    return outrider(text, data_dir=data_dir, args=("--grpc-listen", "127.0.0.1:0"))


def infer_once(client: grpcclient.InferenceServerClient, x: list[float], user: str, rid: str) -> np.ndarray:
    """One inference of one held-out digit, as a sticky user, with its request id."""
    tensor = grpcclient.InferInput("input", [1, len(x)], "FP32")
    tensor.set_data_from_numpy(np.asarray([x], dtype=np.float32))
    headers = {"x-user-id": user, "x-request-id": rid}
    result = client.infer("digits", [tensor], headers=headers, client_timeout=10)
    out: np.ndarray = result.as_numpy(result.get_response().outputs[0].name)
    return out


def infer_with_metadata(address: str, x: list[float], user: str, rid: str) -> tuple[int, dict[str, str]]:
    """One inference with grpc's own stub: the label, and the answer's initial metadata."""
    with grpc.insecure_channel(address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="digits")
        tensor = request.inputs.add()
        tensor.name, tensor.datatype = "input", "FP32"
        tensor.shape.extend([1, len(x)])
        request.raw_input_contents.append(np.asarray([x], dtype=np.float32).tobytes())
        answer, call = stub.ModelInfer.with_call(
            request, metadata=(("x-user-id", user), ("x-request-id", rid)), timeout=10
        )
        label = int(np.argmax(np.frombuffer(answer.raw_output_contents[0], dtype=np.float32)))
        return label, {str(k): str(v) for k, v in call.initial_metadata()}


@pytest.mark.parametrize("servers", [(0.0, 0.0)], indirect=True)
async def test_tritonclient_grpc_through_outrider_sticky_and_recorded(
    servers: tuple[Proc, Proc], outrider: OutriderFactory, models_dir: Path, tmp_path: Path
) -> None:
    stable, _ = servers
    data_dir = tmp_path / "data"
    proxy = grpc_proxy(outrider, servers, data_dir, (50,))
    address = proxy.ready["grpc"]
    test_set = read_test_set(models_dir / "test_set.json")

    def session() -> list[tuple[str, str, int]]:
        client = grpcclient.InferenceServerClient(url=address)
        try:
            assert client.is_server_live()
            assert client.is_server_ready()
            assert client.is_model_ready("digits")
            meta = client.get_model_metadata("digits", as_json=True)
            assert meta["name"] == "digits"
            direct = grpcclient.InferenceServerClient(url=stable.ready["grpc"])
            calls = []
            for i in range(120):
                user = f"user-{i % 30}"
                x = [float(v) for v in test_set.x[i % len(test_set.y)]]
                got = infer_once(client, x, user, f"g-{i}")
                want = infer_once(direct, x, user, f"d-{i}")
                calls.append((f"g-{i}", user, int(np.argmax(got))))
                assert got.shape == want.shape
            label, metadata = infer_with_metadata(address, [float(v) for v in test_set.x[0]], "user-0", "m-0")
            assert metadata["x-request-id"] == "m-0"
            shown["m-0"] = metadata["x-outrider-variant"]  # checked against its record below
            calls.append(("m-0", "user-0", label))
            with pytest.raises(InferenceServerException) as refused:
                client.infer("no-such-model", [], client_timeout=5)
            assert "no experiment" in str(refused.value) or "NOT_FOUND" in str(refused.value)
            return calls
        finally:
            client.close()

    shown: dict[str, str] = {}
    calls = await asyncio.to_thread(session)
    proxy.stop()
    records = {str(r["request_id"]): r for r in await exported(data_dir)}
    assert set(records) == {rid for rid, _, _ in calls}  # one record per call, none for health/metadata
    assert shown["m-0"] == records["m-0"]["variant"]  # the answer names its variant (exposeVariant)
    by_unit: dict[str, set[str]] = {}
    for rid, _, _ in calls:
        record = records[rid]
        assert (record["status"], record["error"]) == (200, None)
        by_unit.setdefault(str(record["unit"]), set()).add(str(record["variant"]))
    assert len(by_unit) == 30
    assert all(len(variants) == 1 for variants in by_unit.values())  # sticky per user
    assert {v for vs in by_unit.values() for v in vs} == {"stable", "candidate"}


@pytest.mark.parametrize("servers", [(0.01, 0.05)], indirect=True)
async def test_a_grpc_candidate_failing_5x_is_rolled_back(
    servers: tuple[Proc, Proc], outrider: OutriderFactory, models_dir: Path, tmp_path: Path
) -> None:
    proxy = grpc_proxy(outrider, servers, tmp_path / "data", (20, 50), ANALYSIS)
    address = proxy.ready["grpc"]
    test_set = read_test_set(models_dir / "test_set.json")
    answers: list[tuple[float, str]] = []
    stop = time.monotonic() + 90

    def drive(worker: int) -> None:
        client = grpcclient.InferenceServerClient(url=address)
        rng = np.random.default_rng(worker)
        try:
            i = 0
            while time.monotonic() < stop:
                user = f"user-{rng.integers(5000)}"
                x = [float(v) for v in test_set.x[int(rng.integers(len(test_set.y)))]]
                with contextlib.suppress(InferenceServerException):
                    infer_once(client, x, user, f"w{worker}-{i}")
                answers.append((time.time(), f"w{worker}-{i}"))
                i += 1
        finally:
            client.close()

    async def phase() -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{proxy.admin_url}/experiments/grpc-split") as r,
        ):
            state: dict[str, Any] = (await r.json())["state"]
            return state

    loop = asyncio.get_running_loop()
    drivers = [loop.run_in_executor(None, drive, w) for w in range(8)]
    state = await phase()
    while state["phase"] != "rolled_back" and time.monotonic() < stop:
        await asyncio.sleep(0.2)
        state = await phase()
    decided = time.time()
    stop = min(stop, time.monotonic() + 2.0)  # keep calling for 2 s after the decision
    await asyncio.gather(*drivers)
    assert state["phase"] == "rolled_back", state
    decision = state["history"][-1]
    assert decision["decision"] == "ROLLBACK"
    assert "error_rate" in decision["reason"]
    proxy.stop()
    records = {str(r["request_id"]): r for r in await exported(tmp_path / "data")}
    late = [records[rid]["variant"] for at, rid in answers if at > decision["at"] + 1.0 and rid in records]
    assert late
    assert set(late) == {"stable"}
    assert decided >= decision["at"]


@pytest.mark.parametrize("servers", [(0.0, 0.0)], indirect=True)
async def test_model_stream_infer_passes_through_to_stable_unrecorded(
    servers: tuple[Proc, Proc], outrider: OutriderFactory, models_dir: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    proxy = grpc_proxy(outrider, servers, data_dir, (50,))
    test_set = read_test_set(models_dir / "test_set.json")

    def stream() -> list[tuple[str, int]]:
        got: list[tuple[str, int]] = []
        done = threading.Event()

        def callback(result: Any, error: Any) -> None:
            assert error is None, error
            response = result.get_response()
            got.append((response.id, int(np.argmax(result.as_numpy(response.outputs[0].name)))))
            if len(got) == 20:
                done.set()

        client = grpcclient.InferenceServerClient(url=proxy.ready["grpc"])
        client.start_stream(callback=callback, headers={"x-user-id": "streamer"})
        for i in range(20):
            tensor = grpcclient.InferInput("input", [1, 64], "FP32")
            tensor.set_data_from_numpy(np.asarray([test_set.x[i]], dtype=np.float32))
            client.async_stream_infer("digits", [tensor], request_id=f"s-{i}")
        assert done.wait(10)
        client.stop_stream()
        client.close()
        return got

    got = await asyncio.to_thread(stream)
    assert [rid for rid, _ in got] == [f"s-{i}" for i in range(20)]  # every answer, in order
    accuracy = np.mean([label == test_set.y[i] for i, (_, label) in enumerate(got)])
    assert accuracy > 0.8  # real answers of the digits model
    proxy.stop()
    assert await exported(data_dir) == []  # a stream is not an experiment outcome
