"""The aiohttp application: Open Inference Protocol v2 REST routes over one `OnnxModel`, and the
OpenAI-compatible text endpoint (`modelserver.llm`) beside them or alone.

Inference runs in a small thread pool owned by the app (onnxruntime releases the GIL while it computes); every
error, including aiohttp's own 404/405/413, leaves as `{"error": message}` from one middleware.

Usage: web.run_app(build_app(OnnxModel.load(path, "digits"), Faults()))
       build_app(None, Faults(), LlmKnobs(ttft_s=0.05, itl_s=0.01))   # the text endpoint alone
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from modelserver import oip
from modelserver.faults import Faults
from modelserver.llm import LlmKnobs, add_routes
from modelserver.log import log_event
from modelserver.runtime import OnnxModel

SERVICE = "modelserver"
MAX_BODY_BYTES = 16 * 1024 * 1024  # a full 1024-row FP32 batch as JSON text stays well below this
WORKERS = min(4, os.cpu_count() or 1)

MODEL = web.AppKey("model", OnnxModel)
FAULTS = web.AppKey("faults", Faults)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(message: str, status: int) -> web.Response:
    return web.Response(body=oip.error_body(message), status=status, content_type="application/json")


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into the OIP error shape, with the right status."""
    try:
        return await handler(request)
    except oip.OipError as exc:
        return _error(exc.message, exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.reason, exc.status)
    except Exception as exc:
        log_event("error", service=SERVICE, path=request.path, error=repr(exc))
        return _error("internal error", 500)


def _model(request: web.Request) -> OnnxModel:
    """The model a `/v2/models/{name}[/versions/{version}]` path names, or a 404."""
    model = request.app[MODEL]
    name = request.match_info["name"]
    version = request.match_info.get("version")
    if name != model.name:
        raise oip.OipError(f"unknown model '{name}'; this server holds '{model.name}'", 404)
    if version is not None and version != model.version:
        raise oip.OipError(f"unknown version '{version}' of model '{name}'; it has '{model.version}'", 404)
    return model


async def server_metadata(request: web.Request) -> web.Response:
    """GET /v2."""
    return _json({"name": "outrider-modelserver", "version": "1", "extensions": []})


async def live(request: web.Request) -> web.Response:
    """GET /v2/health/live: the process answers."""
    return _json({"live": True})


async def ready(request: web.Request) -> web.Response:
    """GET /v2/health/ready: the model is loaded before the port opens, so answering means ready."""
    return _json({"ready": True})


async def model_metadata(request: web.Request) -> web.Response:
    """GET /v2/models/{name}."""
    return _json(_model(request).metadata())


async def model_ready(request: web.Request) -> web.Response:
    """GET /v2/models/{name}/ready."""
    return _json({"name": _model(request).name, "ready": True})


async def infer(request: web.Request) -> web.Response:
    """POST /v2/models/{name}/infer: faults first (one draw per request), then inference in the pool."""
    model = _model(request)
    faults = request.app[FAULTS]
    fail = faults.should_fail()
    await faults.delay()
    if fail:
        raise oip.OipError("injected fault", 500)
    if "Inference-Header-Content-Length" in request.headers:
        raise oip.OipError("the binary tensor data extension is not supported; send JSON")
    body = await request.read()
    loop = asyncio.get_running_loop()
    reply = await loop.run_in_executor(request.app[EXECUTOR], model.infer, body)
    return web.Response(body=reply, content_type="application/json")


async def _executor(app: web.Application) -> AsyncIterator[None]:
    """The inference pool lives exactly as long as the app; requests have drained before it closes."""
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="infer") as pool:
        app[EXECUTOR] = pool
        yield


def build_app(model: OnnxModel | None, faults: Faults, llm: LlmKnobs | None = None) -> web.Application:
    """The OIP application serving `model` (if any) and the text endpoint (if `llm`), degraded by `faults`."""
    app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_BODY_BYTES)
    app[FAULTS] = faults
    app.cleanup_ctx.append(_executor)
    if model is not None:
        app[MODEL] = model
        for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            app.router.add_get(prefix, model_metadata)
            app.router.add_get(f"{prefix}/ready", model_ready)
            app.router.add_post(f"{prefix}/infer", infer)
    if llm is not None:
        add_routes(app, llm, faults)
    app.router.add_get("/v2", server_metadata)
    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", ready)
    return app
