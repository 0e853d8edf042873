"""The committed admin OpenAPI document against the admin app: same routes, documented errors, loopback bind.

Whole-process checks (schemathesis against a running sidecar) are in tests/integration/test_admin_openapi.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from experiments.config import load_experiment_text
from proxy.admin.api import OPENAPI_FILE, admin_app
from proxy.cli.command import build_parser
from proxy.control.router import Router
from proxy.settings.build import sidecar_settings
from proxy.settings.load import resolve
from proxy.telemetry.metrics import Metrics
from tests.integration.conftest import canary_yaml

DOC: dict[str, Any] = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
OPERATIONS = [(method.upper(), path) for path, item in DOC["paths"].items() for method in item]


def app(token: str | None = "s3cret") -> web.Application:
    """An admin app with one experiment (`split`) and no state keeper (the data app never started)."""
    experiment = load_experiment_text(canary_yaml("http://127.0.0.1:1", "http://127.0.0.1:2"), "t.yaml")
    return admin_app(Router([experiment], 0.0), Metrics(), lambda: True, lambda: None, token)


def test_the_document_is_openapi_3_1_with_a_bearer_scheme() -> None:
    assert DOC["openapi"].startswith("3.1.")
    scheme = DOC["components"]["securitySchemes"]["adminToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


async def test_every_operation_is_routed_and_every_route_is_documented() -> None:
    admin = app()
    routed = set()
    for method, path in OPERATIONS:
        match = await admin.router.resolve(make_mocked_request(method, path.replace("{name}", "split")))
        assert match.http_exception is None, (method, path)
        routed.add(match.route)
    served = {route for route in admin.router.routes() if route.method != "HEAD"}  # HEAD comes with GET
    assert served == routed, sorted(str(r) for r in served - routed)


def test_mutations_need_the_bearer_token_and_reads_do_not() -> None:
    for method, path in OPERATIONS:
        operation = DOC["paths"][path][method.lower()]
        if method == "GET":
            assert "security" not in operation, path
            continue
        assert operation["security"] == [{"adminToken": []}], path
        assert {"200", "401", "403", "404", "409", "503"} == set(operation["responses"]), path
        assert operation["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True


@pytest.mark.parametrize(
    ("token", "method", "path", "auth", "status", "code"),
    [
        (None, "POST", "/experiments/split/promote", "Bearer x", 403, "forbidden"),
        ("s3cret", "POST", "/experiments/split/pause", None, 401, "unauthorized"),
        ("s3cret", "POST", "/experiments/split/pause", "Bearer s3cre", 401, "unauthorized"),
        ("s3cret", "POST", "/experiments/nope/resume", "Bearer s3cret", 404, "not_found"),
        ("s3cret", "POST", "/experiments/split/rollback", "Bearer s3cret", 503, "starting"),
        ("s3cret", "GET", "/experiments/nope", None, 404, "not_found"),
    ],
)
async def test_every_error_is_documented_with_its_shape(
    token: str | None, method: str, path: str, auth: str | None, status: int, code: str
) -> None:
    headers = {} if auth is None else {"Authorization": auth}
    async with TestClient(TestServer(app(token))) as c, c.request(method, path, headers=headers) as r:
        body = await r.json()
        www = r.headers.get("WWW-Authenticate")
    assert (r.status, body["code"]) == (status, code)
    template = "/experiments/{name}" + ("/" + path.rsplit("/", 1)[1] if method == "POST" else "")
    documented = DOC["paths"][template][method.lower()]["responses"][str(status)]
    assert documented["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    error = DOC["components"]["schemas"]["Error"]
    assert set(body) == set(error["required"]) == set(error["properties"])
    assert code in error["properties"]["code"]["enum"]
    assert (www is not None) == ("headers" in documented)


async def test_openapi_json_serves_the_committed_document() -> None:
    async with TestClient(TestServer(app())) as client, client.get("/openapi.json") as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        assert await r.read() == OPENAPI_FILE.read_bytes()


def test_outrider_run_binds_the_admin_port_to_loopback_by_default() -> None:
    args = build_parser().parse_args(["run"])
    settings = sidecar_settings(resolve(args.settings, vars(args), {}).settings, [], [])
    assert settings.admin == ("127.0.0.1", 8081)
    assert settings.admin_token is None  # and with no token, mutations are refused (403), never open
