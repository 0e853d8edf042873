"""A shadow variant with its own `model`/`version` gets copies asking for them (as a serving variant's
requests do), over HTTP to a real server on 127.0.0.1:0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import web

from experiments.model import ShadowSpec
from proxy.filters.mirror import Mirror
from shadow.dispatch import ShadowDispatcher
from tests.proxy.test_mirror import ShadowServer, dispatcher, exchange, experiment, mirrored

__all__ = ["dispatcher"]  # the fixture, used by name


class PathServer(ShadowServer):
    """Remembers the path of each copy."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        return await super().handle(request)


@pytest.fixture
async def shadow() -> AsyncIterator[PathServer]:
    server = PathServer()
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


async def test_a_renamed_shadow_is_asked_for_its_own_model_and_version(
    shadow: PathServer, dispatcher: ShadowDispatcher
) -> None:
    exp = experiment(shadow.url, ShadowSpec())
    renamed = replace(exp.variants[1], model="m-int8", version="3")
    exp = replace(exp, variants=(exp.variants[0], renamed))
    record = await mirrored(Mirror(dispatcher), exchange(exp))
    assert record.shadows[0]["status"] == 200
    assert shadow.paths == ["/v2/models/m-int8/versions/3/infer"]
