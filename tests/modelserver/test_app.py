"""The aiohttp application in-process: routing, versions and the one error shape for every failure."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from modelserver.app import MAX_BODY_BYTES, build_app
from modelserver.faults import Faults
from modelserver.runtime import OnnxModel
from modelserver.testset import infer_body

BODY = infer_body([[0] * 64])


class BrokenSession:
    """Stands in for onnxruntime when it fails in a way no request can cause."""

    def run(self, *args: Any) -> Any:
        raise RuntimeError("kaput")


@pytest.fixture(scope="module")
def digits(models_dir: Path) -> OnnxModel:
    return OnnxModel.load(models_dir / "digits.onnx", "digits")


async def client_for(model: OnnxModel) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(model, Faults())))
    await client.start_server()
    return client


@pytest.fixture
async def client(digits: OnnxModel) -> AsyncIterator[TestClient[Any, Any]]:
    c = await client_for(digits)
    yield c
    await c.close()


async def test_server_metadata(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v2")
    assert (await resp.json())["name"] == "outrider-modelserver"


async def test_versioned_paths_reach_the_model(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/v2/models/digits/versions/1/infer", json=BODY)
    assert resp.status == 200
    assert (await resp.json())["model_version"] == "1"
    resp = await client.get("/v2/models/digits/versions/2")
    assert resp.status == 404
    assert await resp.json() == {"error": "unknown version '2' of model 'digits'; it has '1'"}


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/v3/anything", 404, "Not Found"),
        ("GET", "/v2/models/digits/infer", 405, "Method Not Allowed"),
        ("POST", "/v2/models/other/infer", 404, "unknown model 'other'; this server holds 'digits'"),
    ],
)
async def test_routing_failures_use_the_error_shape(
    client: TestClient[Any, Any], method: str, path: str, status: int, error: str
) -> None:
    resp = await client.request(method, path, json=BODY)
    assert resp.status == status
    assert resp.content_type == "application/json"
    assert await resp.json() == {"error": error}


async def test_an_oversized_body_is_413_in_the_error_shape(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/v2/models/digits/infer", data=io.BytesIO(b" " * (MAX_BODY_BYTES + 1)))
    assert resp.status == 413
    assert "error" in await resp.json()


async def test_the_binary_extension_is_refused(client: TestClient[Any, Any]) -> None:
    headers = {"Inference-Header-Content-Length": "10"}
    resp = await client.post("/v2/models/digits/infer", data=b"{}", headers=headers)
    assert resp.status == 400
    assert "binary tensor data extension" in (await resp.json())["error"]


async def test_an_unexpected_failure_is_500_and_logged(
    digits: OnnxModel, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await client_for(replace(digits, session=BrokenSession()))
    try:
        resp = await client.post("/v2/models/digits/infer", json=BODY)
        assert resp.status == 500
        assert await resp.json() == {"error": "internal error"}
    finally:
        await client.close()
    assert '"event":"error"' in capsys.readouterr().err
