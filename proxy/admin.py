"""The admin port: health, readiness, Prometheus metrics and the experiments' live state (read-only for now).

Usage: app = admin_app(router, metrics, readiness)
Bound to 127.0.0.1 by default; mutations (promote/rollback/pause) will need a token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from experiments.model import ABStrategy, BlueGreenStrategy, CanaryStrategy, Experiment
from proxy.metrics import Metrics
from proxy.router import Live, Router

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def json_response(data: Any, status: int = 200) -> web.Response:
    """orjson-encoded JSON response."""
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def strategy_json(exp: Experiment) -> dict[str, Any]:
    """The strategy as configured."""
    s = exp.strategy
    if isinstance(s, CanaryStrategy):
        return {"kind": "canary", "steps": list(s.steps), "minRequestsPerStep": s.min_requests_per_step}
    if isinstance(s, ABStrategy):
        return {"kind": "abTest", "weights": dict(s.weights)}
    assert isinstance(s, BlueGreenStrategy)
    return {"kind": "blueGreen", "active": s.active}


def experiment_json(live: Live) -> dict[str, Any]:
    """What /experiments/{name} shows: config summary, live weights, phase and state version."""
    exp, state = live.experiment, live.state
    return {
        "name": exp.name,
        "source": exp.source,
        "match": {"pathPrefix": exp.path_prefix, "methods": sorted(exp.methods)},
        "variants": [
            {
                "name": v.name,
                "role": v.role,
                "upstream": v.upstream,
                "weight": live.table.weights().get(v.name, 0.0),
            }
            for v in exp.variants
        ],
        "strategy": strategy_json(exp),
        "weights": dict(state.weights),
        "phase": state.phase,
        "step": state.step,
        "version": state.version,
        "state": state.to_json(),
    }


def admin_app(router: Router, metrics: Metrics, ready: Callable[[], bool]) -> web.Application:
    """The admin application."""

    async def healthz(_: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return json_response({"ready": ok}, status=200 if ok else 503)

    async def metrics_text(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": PROMETHEUS_TEXT})

    async def experiments(_: web.Request) -> web.Response:
        return json_response({"experiments": [experiment_json(lv) for lv in router.all()]})

    async def experiment(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            live = router.get(name)
        except KeyError:
            return json_response({"code": "not_found", "detail": f"no experiment named {name!r}"}, status=404)
        return json_response(experiment_json(live))

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_text)
    app.router.add_get("/experiments", experiments)
    app.router.add_get("/experiments/{name}", experiment)
    return app
