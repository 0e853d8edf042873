"""The admin port: health, readiness, Prometheus metrics, the experiments' live state, and manual control.

Usage: app = admin_app(router, metrics, readiness, keeper, token)
Bound to 127.0.0.1 by default. `GET /openapi.json` serves the committed description of every route
(`proxy/admin_openapi.json`). Mutations (`POST /experiments/{name}/promote|rollback|pause|resume`) need
`Authorization: Bearer TOKEN`; with no token configured they are refused (403), never open.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from analysis.policy import DEFAULT_GUARDRAILS
from analysis.wording import step_of
from experiments.model import ABStrategy, BlueGreenStrategy, CanaryStrategy, Experiment, ShadowOnlyStrategy
from experiments.redis_state import Fenced
from experiments.state import ExperimentState, Phase
from proxy.dashboard import dashboard
from proxy.metrics import Metrics
from proxy.router import Live, Router
from proxy.statekeeper import StateConflict, StateKeeper

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENAPI_FILE = Path(__file__).with_name("admin_openapi.json")
OPENAPI = web.AppKey("openapi", bytes)
NOT_LEADER = (
    "another outrider process holds this data dir's leader lock: change the experiment on its admin port "
    "(docs/scale-out.md)"
)


async def load_openapi(app: web.Application) -> AsyncIterator[None]:
    """Read the OpenAPI document once as the admin app starts, in a thread (never in a handler)."""
    app[OPENAPI] = await asyncio.to_thread(OPENAPI_FILE.read_bytes)
    yield


async def openapi(request: web.Request) -> web.Response:
    """The admin API's OpenAPI 3.1 document, as read at start-up."""
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


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
    if isinstance(s, ShadowOnlyStrategy):
        return {"kind": "shadow"}
    assert isinstance(s, BlueGreenStrategy)
    return {"kind": "blueGreen", "active": s.active}


def thresholds_json(exp: Experiment) -> dict[str, float] | None:
    """The e-value thresholds of the looks (as analysis.engine applies them): harm 1/(α/(K·J)), pass 1/(α/J)
    for K guardrails and J candidates compared with stable."""
    if exp.analysis is None:
        return None
    alpha, k = exp.analysis.alpha, len(exp.analysis.guardrails or DEFAULT_GUARDRAILS)
    j = max(sum(1 for v in exp.serving if v.role == "candidate"), 1)
    return {"alpha": alpha, "harm": k * j / alpha, "pass": j / alpha}


def request_counts(metrics: Metrics) -> dict[str, dict[str, dict[str, int]]]:
    """experiment → variant → {"total", "errors" (5xx)} answered so far, from the requests counter."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for family in metrics.request_families():
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            count = out.setdefault(labels["experiment"], {}).setdefault(
                labels["destination_version"], {"total": 0, "errors": 0}
            )
            count["total"] += int(sample.value)
            if labels["response_code"].startswith("5"):
                count["errors"] += int(sample.value)
    return out


def experiment_json(
    live: Live, analysis: dict[str, Any] | None = None, requests: dict[str, dict[str, int]] | None = None
) -> dict[str, Any]:
    """What /experiments/{name} shows: config summary, live weights, phase, state version, last look,
    requests answered per variant and the e-value thresholds."""
    exp, state = live.experiment, live.state
    return {
        "analysis": analysis,
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
        "step_label": step_of(state.step, getattr(exp.strategy, "steps", None)),
        "version": state.version,
        "state": state.to_json(),
        "requests": requests or {},
        "thresholds": thresholds_json(exp),
    }


def error(status: int, code: str, detail: str) -> web.Response:
    """The error shape of the data port, on the admin port too."""
    return json_response({"code": code, "detail": detail}, status=status)


def authorized(request: web.Request, token: str | None) -> web.Response | None:
    """None if the request carries the admin token, else the refusal to send."""
    if token is None:
        return error(403, "forbidden", "mutations are disabled: no admin token configured")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return web.Response(
            body=orjson.dumps({"code": "unauthorized", "detail": "missing or wrong admin token"}),
            status=401,
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="outrider-admin"'},
        )
    return None


def refusal(action: str, state: ExperimentState) -> str | None:
    """Why `action` is not allowed in `state` (None if it is)."""
    if state.phase in ("promoted", "rolled_back"):
        return f"experiment is already {state.phase}"
    if action == "pause" and state.phase == "paused":
        return "experiment is already paused"
    if action == "resume" and state.phase != "paused":
        return "experiment is not paused"
    return None


async def mutate(keeper: StateKeeper, live: Live, action: str) -> web.Response:
    """Apply a manual promote/rollback/pause/resume; 409 when the phase does not allow it (checked under the
    keeper's lock, so two concurrent promotes cannot both pass)."""
    phase: Phase = {
        "promote": "promoted",
        "rollback": "rolled_back",
        "pause": "paused",
        "resume": "progressing",
    }[action]  # type: ignore[assignment]
    try:
        new = await keeper.change_if(
            live.experiment.name, phase, None, f"manual {action} (admin API)", partial(refusal, action)
        )
    except StateConflict as err:
        return error(409, "conflict", str(err))
    except Fenced as err:  # this replica's lease was lost (a Redis store): another one leads now
        return error(503, "not_leader", str(err))
    return json_response(new.to_json())


def admin_app(
    router: Router,
    metrics: Metrics,
    ready: Callable[[], bool],
    keeper: Callable[[], StateKeeper | None] = lambda: None,
    token: str | None = None,
    analysis_of: Callable[[str], dict[str, Any] | None] = lambda name: None,
    follower: Callable[[], bool] = lambda: False,
    outcomes: Callable[[], dict[str, object] | None] = lambda: None,
) -> web.Application:
    """The admin application (`keeper` is looked up per call: it exists once the data app has started;
    `follower` says whether another process holds the data dir's leader lock)."""

    async def healthz(_: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return json_response({"ready": ok}, status=200 if ok else 503)

    async def metrics_text(_: web.Request) -> web.Response:
        await metrics.refresh()
        return web.Response(body=metrics.render(), headers={"Content-Type": PROMETHEUS_TEXT})

    async def experiments(_: web.Request) -> web.Response:
        await metrics.refresh()
        counts = request_counts(metrics)
        return json_response(
            {
                "experiments": [
                    experiment_json(lv, analysis_of(lv.experiment.name), counts.get(lv.experiment.name))
                    for lv in router.all()
                ]
            }
        )

    async def experiment(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            live = router.get(name)
        except KeyError:
            return json_response({"code": "not_found", "detail": f"no experiment named {name!r}"}, status=404)
        await metrics.refresh()
        return json_response(experiment_json(live, analysis_of(name), request_counts(metrics).get(name)))

    async def outcome_counts(_: web.Request) -> web.Response:
        counts = outcomes()
        if counts is None:
            return error(404, "no_outcomes", "this process writes no outcomes (a supervisor)")
        return json_response(counts)

    async def action(request: web.Request) -> web.Response:
        refused = authorized(request, token)
        if refused is not None:
            return refused
        name, verb = request.match_info["name"], request.match_info["action"]
        try:
            live = router.get(name)
        except KeyError:
            return error(404, "not_found", f"no experiment named {name!r}")
        current = keeper()
        if current is None and follower():
            return error(503, "not_leader", NOT_LEADER)
        if current is None:
            return error(503, "starting", "state keeper not ready")
        return await mutate(current, live, verb)

    app = web.Application()
    app.cleanup_ctx.append(load_openapi)
    app.router.add_post("/experiments/{name}/{action:promote|rollback|pause|resume}", action)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_text)
    app.router.add_get("/experiments", experiments)
    app.router.add_get("/outcomes", outcome_counts)
    app.router.add_get("/experiments/{name}", experiment)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/openapi.json", openapi)
    return app
