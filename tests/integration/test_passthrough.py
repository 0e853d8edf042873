"""What the upstream receives through a real outrider. Bodies byte for byte, whatever their encoding: a gzip
request body still gzip (hashed there as received), a binary-tensor body (`Inference-Header-Content-Length`)
untouched, and a real OIP client (tritonclient) sending gzip and binary tensors gets its answer. `Host`: the
upstream's own, or the client's with `--preserve-host`."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
from aiohttp import web

from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.procs import Proc

Seen = list[tuple[str | None, bytes]]
SEEN = web.AppKey("seen", Seen)


async def echoed(proxy: Proc, body: bytes = b"{}", headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        url = f"{proxy.url}/v2/models/m/infer"
        async with session.post(url, data=body, headers={"x-user-id": "u1", **(headers or {})}) as resp:
            assert resp.status == 200
            payload: dict[str, Any] = orjson.loads(await resp.read())
            return payload


async def test_a_gzip_body_and_a_binary_tensor_body_reach_the_upstream_as_sent(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory
) -> None:
    stable, candidate = upstreams
    proxy = outrider(canary_yaml(stable.url, candidate.url))
    compressed = gzip.compress(b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}')
    echo = await echoed(proxy, compressed, {"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert echo["body_sha256"] == hashlib.sha256(compressed).hexdigest()
    assert echo["body_len"] == len(compressed)
    assert ["Content-Encoding", "gzip"] in echo["headers"]

    header = b'{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}'
    tensor = header + np.arange(4, dtype=np.float32).tobytes()
    echo = await echoed(proxy, tensor, {"Inference-Header-Content-Length": str(len(header))})
    assert echo["body_sha256"] == hashlib.sha256(tensor).hexdigest()
    assert ["Inference-Header-Content-Length", str(len(header))] in echo["headers"]


@pytest.mark.parametrize("preserve", [False, True])
async def test_the_upstream_gets_its_own_host_unless_told_to_preserve_the_clients(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, preserve: bool
) -> None:
    stable, candidate = upstreams
    proxy = outrider(canary_yaml(stable.url, candidate.url), args=("--preserve-host",) if preserve else ())
    echo = await echoed(proxy, headers={"Host": "models.example"})
    hosts = [v for k, v in echo["headers"] if k.lower() == "host"]
    upstream = stable.address if echo["name"] == "stable" else candidate.address
    assert hosts == (["models.example"] if preserve else [upstream])


def binary_outputs(outputs: dict[str, np.ndarray[Any, Any]]) -> tuple[bytes, int]:
    """An OIP answer with binary outputs: (body, JSON header length)."""
    meta = [
        {
            "name": name,
            "datatype": "FP32",
            "shape": list(array.shape),
            "parameters": {"binary_data_size": array.nbytes},
        }
        for name, array in outputs.items()
    ]
    header = json.dumps({"model_name": "m", "outputs": meta}).encode()
    return header + b"".join(a.tobytes() for a in outputs.values()), len(header)


async def oip_binary_infer(request: web.Request) -> web.Response:
    """Decodes a (possibly gzip) binary-tensor request as the Triton HTTP extension defines it, doubles it."""
    raw = await request.read()  # as sent: the server does not decompress
    body = gzip.decompress(raw) if request.headers.get("Content-Encoding") == "gzip" else raw
    request.app[SEEN].append((request.headers.get("Content-Encoding"), raw))
    length = int(request.headers["Inference-Header-Content-Length"])
    doc, offset = json.loads(body[:length]), length
    outputs = {}
    for item in doc["inputs"]:
        size = item["parameters"]["binary_data_size"]
        array = np.frombuffer(body[offset : offset + size], dtype=np.float32).reshape(item["shape"])
        offset += size
        outputs["OUTPUT0"] = array * 2
    answer, header_length = binary_outputs(outputs)
    headers = {"Inference-Header-Content-Length": str(header_length)}
    return web.Response(body=answer, headers=headers, content_type="application/octet-stream")


@pytest.fixture
async def oip_binary() -> AsyncIterator[tuple[str, Seen]]:
    app = web.Application()
    seen: Seen = []
    app[SEEN] = seen
    app.router.add_post("/v2/models/{name}/infer", oip_binary_infer)
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


async def test_tritonclient_gzip_and_binary_tensors_through_outrider(
    oip_binary: tuple[str, Seen], outrider: OutriderFactory, tmp_path: Path
) -> None:
    httpclient = pytest.importorskip("tritonclient.http.aio")
    url, seen = oip_binary
    proxy = outrider(canary_yaml(url, url, unit="request"))
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    client = httpclient.InferenceServerClient(url=proxy.address)
    try:
        tensor = httpclient.InferInput("INPUT0", list(data.shape), "FP32")
        tensor.set_data_from_numpy(data, binary_data=True)
        result = await client.infer(
            "m",
            [tensor],
            outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=True)],
            request_compression_algorithm="gzip",
        )
    finally:
        await client.close()
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), data * 2)
    (encoding, raw), *_ = seen
    assert encoding == "gzip"
    assert gzip.decompress(raw).endswith(data.tobytes())  # still compressed on arrival, intact inside
