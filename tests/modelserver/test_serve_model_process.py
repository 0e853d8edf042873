"""The real model server as a process: protocol, accuracy over HTTP, rejections, fault knobs, clean stop."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from modelserver.testset import TestSet, infer_body, read_test_set
from tests.support.procs import Proc, outrider_cmd, start

BATCH = 128


def serve_model_cmd(*args: str) -> list[str]:
    """`outrider serve-model ARGS` through the installed script, as users and the demo start it."""
    return outrider_cmd("serve-model", *args)


@pytest.fixture(scope="module")
def test_set(models_dir: Path) -> TestSet:
    return read_test_set(models_dir / "test_set.json")


@contextmanager
def serving(models_dir: Path, tmp: Path, model: str, *extra: str) -> Iterator[Proc]:
    """A model server on a free port for the duration of the block."""
    proc = start(serve_model_cmd("--model", str(models_dir / model), "--port", "0", *extra), tmp / "ms.log")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def fp32(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with serving(models_dir, tmp_path_factory.mktemp("fp32"), "digits.onnx") as proc:
        yield proc


@pytest.fixture(scope="module")
def int8(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with serving(models_dir, tmp_path_factory.mktemp("int8"), "digits-int8.onnx") as proc:
        yield proc


async def predict(session: aiohttp.ClientSession, url: str, rows: list[list[int]]) -> np.ndarray:
    """Top-1 class of every row, asked over HTTP in batches."""
    labels: list[np.ndarray] = []
    for i in range(0, len(rows), BATCH):
        chunk = rows[i : i + BATCH]
        async with session.post(url, json=infer_body(chunk, request_id=f"b{i}")) as resp:
            assert resp.status == 200, await resp.text()
            reply = await resp.json()
        assert reply["id"] == f"b{i}"
        (out,) = reply["outputs"]
        assert out["shape"] == [len(chunk), 10]
        labels.append(np.array(out["data"]).reshape(len(chunk), 10).argmax(axis=1))
    return np.concatenate(labels)


def test_ready_line_names_the_bound_address_and_model(fp32: Proc) -> None:
    assert set(fp32.ready) == {"event", "service", "address", "model"}
    assert (fp32.ready["service"], fp32.ready["model"]) == ("modelserver", "digits")
    host, port = fp32.address.rsplit(":", 1)
    assert (host, int(port) > 0) == ("127.0.0.1", True)


async def test_health_ready_and_metadata(fp32: Proc) -> None:
    async with aiohttp.ClientSession(fp32.url) as s:
        assert await (await s.get("/v2/health/live")).json() == {"live": True}
        assert await (await s.get("/v2/health/ready")).json() == {"ready": True}
        assert await (await s.get("/v2/models/digits/ready")).json() == {"name": "digits", "ready": True}
        meta = await (await s.get("/v2/models/digits")).json()
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]


async def test_held_out_accuracy_over_http(fp32: Proc, test_set: TestSet) -> None:
    async with aiohttp.ClientSession() as s:
        predicted = await predict(s, f"{fp32.url}/v2/models/digits/infer", test_set.x)
    assert np.mean(predicted == np.array(test_set.y)) >= 0.9


async def test_int8_agrees_with_fp32_over_http(fp32: Proc, int8: Proc, test_set: TestSet) -> None:
    async with aiohttp.ClientSession() as s:
        a = await predict(s, f"{fp32.url}/v2/models/digits/infer", test_set.x)
        b = await predict(s, f"{int8.url}/v2/models/digits-int8/infer", test_set.x)
    assert np.mean(a == b) >= 0.98


def _tensor(**overrides: Any) -> dict[str, Any]:
    return {**infer_body([[0] * 64])["inputs"][0], **overrides}


MALFORMED: list[tuple[str, bytes | dict[str, Any], str]] = [
    ("bad json", b'{"inputs": [', "request body is not valid JSON"),
    ("wrong shape", {"inputs": [_tensor(shape=[1, 32])]}, "shape [1, 32] does not fit the model's [-1, 64]"),
    ("wrong datatype", {"inputs": [_tensor(datatype="INT64")]}, "datatype 'INT64' does not match"),
    ("element count", {"inputs": [_tensor(shape=[2, 64])]}, "needs 128 values, 'data' has 64"),
    ("missing input", {"inputs": [_tensor(name="pixels")]}, "unknown input 'pixels'"),
    ("no inputs", {"id": "x"}, "'inputs' must be a non-empty list"),
]


@pytest.mark.parametrize(("case", "body", "error"), MALFORMED, ids=[m[0] for m in MALFORMED])
async def test_malformed_requests_are_400(
    fp32: Proc, case: str, body: bytes | dict[str, Any], error: str
) -> None:
    url = f"{fp32.url}/v2/models/digits/infer"
    async with aiohttp.ClientSession() as s:
        kwargs: dict[str, Any] = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with s.post(url, **kwargs) as resp:
            assert resp.status == 400, case
            assert error in (await resp.json())["error"]


async def test_unknown_model_is_404(fp32: Proc) -> None:
    async with aiohttp.ClientSession(fp32.url) as s:
        for method, path in (("GET", "/v2/models/nope"), ("POST", "/v2/models/nope/infer")):
            async with s.request(method, path, json=infer_body([[0] * 64])) as resp:
                assert resp.status == 404
                assert "unknown model 'nope'" in (await resp.json())["error"]


async def test_error_rate_fails_the_seeded_share(models_dir: Path, tmp_path: Path) -> None:
    knobs = ("--error-rate", "0.5", "--seed", "7", "--name", "flaky")
    with serving(models_dir, tmp_path, "digits.onnx", *knobs) as proc:
        statuses = []
        async with aiohttp.ClientSession() as s:
            for _ in range(100):  # one at a time: the server draws in arrival order
                async with s.post(f"{proc.url}/v2/models/flaky/infer", json=infer_body([[0] * 64])) as resp:
                    statuses.append(resp.status)
                    if resp.status == 500:
                        assert await resp.json() == {"error": "injected fault"}
        assert set(statuses) == {200, 500}
        rng = random.Random(7)
        assert statuses.count(500) == sum(rng.random() < 0.5 for _ in range(100))
        assert 25 <= statuses.count(500) <= 75


async def test_latency_knob_delays_infer_but_not_health(models_dir: Path, tmp_path: Path) -> None:
    with serving(models_dir, tmp_path, "digits.onnx", "--latency-ms", "300") as proc:
        async with aiohttp.ClientSession(proc.url) as s:
            start_t = time.monotonic()
            async with s.post("/v2/models/digits/infer", json=infer_body([[0] * 64])) as resp:
                assert resp.status == 200
            assert time.monotonic() - start_t >= 0.29
            start_t = time.monotonic()
            async with s.get("/v2/health/ready") as resp:
                assert resp.status == 200
            assert time.monotonic() - start_t < 0.29


def test_sigterm_stops_cleanly(models_dir: Path, tmp_path: Path) -> None:
    proc = start(
        serve_model_cmd("--model", str(models_dir / "digits-weak.onnx"), "--port", "0"), tmp_path / "l"
    )
    assert proc.ready["model"] == "digits-weak"
    assert proc.stop() == 0
    assert [line["event"] for line in proc.log_lines()] == ["listening", "stopping", "stopped"]


def test_a_taken_port_exits_1_with_a_json_error(models_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="exited with 1"):
            start(serve_model_cmd("--model", str(models_dir / "digits.onnx"), "--port", port), tmp_path / "l")
    assert "cannot listen on 127.0.0.1:" in (tmp_path / "l").read_text()
