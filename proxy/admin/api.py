"""The admin port: health, readiness, Prometheus metrics, the experiments' live state, and manual control.

Usage: app = admin_app(router, metrics, readiness, keeper, token)
Bound to 127.0.0.1 by default. `GET /openapi.json` serves the committed description of every route
(`proxy/admin/openapi.json`). Mutations (`POST /experiments/{name}/promote|rollback|pause|resume`) need
`Authorization: Bearer TOKEN`; with no token configured they are refused (403), never open.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from analysis.policy import DEFAULT_GUARDRAILS
from analysis.wording import step_of
from experiments.model import ABStrategy, BlueGreenStrategy, CanaryStrategy, Experiment, ShadowOnlyStrategy
from experiments.redis_state import Fenced
from experiments.state import ExperimentState, Phase
from proxy.admin.dashboard import dashboard
from proxy.control.router import Live, Router
from proxy.control.statekeeper import StateConflict, StateKeeper
from proxy.dataplane.errors import (
    Conflict,
    Forbidden,
    NoOutcomes,
    NotLeader,
    OutriderError,
    Starting,
    Unauthorized,
    UnknownExperiment,
    error_body,
)
from proxy.telemetry.metrics import Metrics

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENAPI_FILE = Path(__file__).with_name("openapi.json")
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


@web.middleware
async def outrider_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal of the admin port is an `OutriderError`, answered in the shape of the data port's."""
    try:
        return await handler(request)
    except OutriderError as err:
        return web.Response(
            body=error_body(err), status=err.status, content_type="application/json", headers=err.headers
        )


def authorize(request: web.Request, token: str | None) -> None:
    """Forbidden/Unauthorized unless the request carries the admin token."""
    if token is None:
        raise Forbidden("mutations are disabled: no admin token configured")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized(
            "missing or wrong admin token", headers={"WWW-Authenticate": 'Bearer realm="outrider-admin"'}
        )


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
        raise Conflict(str(err)) from None
    except Fenced as err:  # this replica's lease was lost (a Redis store): another one leads now
        raise NotLeader(str(err)) from None
    return json_response(new.to_json())


@dataclass(frozen=True)
class AdminSources:
    """What the admin port reads, each looked up per call (the keeper exists once the data app started;
    `follower`: another process holds the data dir's leader lock; `outcomes`: this process's counts)."""

    router: Router
    metrics: Metrics
    ready: Callable[[], bool]
    keeper: Callable[[], StateKeeper | None] = lambda: None
    token: str | None = None
    analysis_of: Callable[[str], dict[str, Any] | None] = lambda name: None
    follower: Callable[[], bool] = lambda: False
    outcomes: Callable[[], dict[str, object] | None] = lambda: None

    def live(self, name: str) -> Live:
        """The experiment called `name`, or UnknownExperiment."""
        try:
            return self.router.get(name)
        except KeyError:
            raise UnknownExperiment(f"no experiment named {name!r}") from None


class AdminHandlers:
    """The admin routes' handlers."""

    def __init__(self, src: AdminSources) -> None:
        self.src = src

    async def healthz(self, _: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        ok = self.src.ready()
        return json_response({"ready": ok}, status=200 if ok else 503)

    async def metrics_text(self, _: web.Request) -> web.Response:
        await self.src.metrics.refresh()
        return web.Response(body=self.src.metrics.render(), headers={"Content-Type": PROMETHEUS_TEXT})

    async def experiments(self, _: web.Request) -> web.Response:
        src = self.src
        await src.metrics.refresh()
        counts = request_counts(src.metrics)
        docs = [
            experiment_json(lv, src.analysis_of(lv.experiment.name), counts.get(lv.experiment.name))
            for lv in src.router.all()
        ]
        return json_response({"experiments": docs})

    async def experiment(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        live = self.src.live(name)
        await self.src.metrics.refresh()
        counts = request_counts(self.src.metrics).get(name)
        return json_response(experiment_json(live, self.src.analysis_of(name), counts))

    async def outcome_counts(self, _: web.Request) -> web.Response:
        counts = self.src.outcomes()
        if counts is None:
            raise NoOutcomes("this process writes no outcomes (a supervisor)")
        return json_response(counts)

    async def action(self, request: web.Request) -> web.Response:
        authorize(request, self.src.token)
        live = self.src.live(request.match_info["name"])
        current = self.src.keeper()
        if current is None and self.src.follower():
            raise NotLeader(NOT_LEADER)
        if current is None:
            raise Starting("state keeper not ready")
        return await mutate(current, live, request.match_info["action"])


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
    """The admin application (AdminSources says what each argument is)."""
    h = AdminHandlers(AdminSources(router, metrics, ready, keeper, token, analysis_of, follower, outcomes))
    app = web.Application(middlewares=[outrider_errors])
    app.cleanup_ctx.append(load_openapi)
    app.router.add_post("/experiments/{name}/{action:promote|rollback|pause|resume}", h.action)
    app.router.add_get("/healthz", h.healthz)
    app.router.add_get("/readyz", h.readyz)
    app.router.add_get("/metrics", h.metrics_text)
    app.router.add_get("/experiments", h.experiments)
    app.router.add_get("/outcomes", h.outcome_counts)
    app.router.add_get("/experiments/{name}", h.experiment)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/openapi.json", openapi)
    return app
