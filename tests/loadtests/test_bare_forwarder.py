"""The bare forwarder as a real process between a client and a real upstream."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.support.procs import Proc, start


@pytest.fixture
def forwarder(tmp_path: Path) -> Iterator[Proc]:
    """An echo upstream and a bare forwarder in front of it; yields the forwarder."""
    upstream = start([sys.executable, "-m", "tests.support.upstream", "--name", "up"], tmp_path / "up.log")
    try:
        fwd = start(
            [sys.executable, "-m", "loadtests.bare_forwarder", "--upstream", upstream.url, "--port", "0"],
            tmp_path / "fwd.log",
        )
        yield fwd
        assert fwd.stop() == 0
    finally:
        upstream.stop()


async def test_a_request_passes_through_with_its_body_and_status(forwarder: Proc) -> None:
    body = orjson.dumps({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]})
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{forwarder.url}/v2/models/digits/infer?x=1",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 200
            echo = await resp.json()
        async with session.get(f"{forwarder.url}/status/503/x") as resp:
            assert resp.status == 503
    assert echo["name"] == "up"
    assert echo["method"] == "POST"
    assert echo["path"] == "/v2/models/digits/infer?x=1"
    assert echo["body_len"] == len(body)
    assert ["Content-Type", "application/json"] in echo["headers"]
