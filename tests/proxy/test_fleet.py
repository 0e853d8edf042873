"""The parts of `--workers N` that need no process of their own: summing metrics texts, the leader lock, a
follower's state watch on a real SQLite file, the admin API of a follower, the reserved port."""

from __future__ import annotations

import socket
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from experiments.config import load_experiment_text
from experiments.state_store import SqliteStateStore
from proxy.admin.api import admin_app
from proxy.control.router import Router
from proxy.control.statekeeper import StateKeeper
from proxy.fleet.fleet_metrics import FleetMetrics
from proxy.fleet.leader import LeaderLock
from proxy.fleet.metrics_merge import LOST_REASON, add, parse, render, retired_part
from proxy.fleet.port import reserve
from proxy.fleet.state_watch import StateWatch
from proxy.telemetry.metrics import Metrics
from tests.integration.conftest import canary_yaml


def worker_text(requests: int, pending: int = 0) -> str:
    """The /metrics text of a process that answered `requests` and has `pending` outcomes queued."""
    registry = CollectorRegistry()
    answered = Counter("outrider_requests", "Requests", ("experiment", "response_code"), registry=registry)
    answered.labels("split", "200").inc(requests)
    seconds = Histogram("outrider_request_duration_seconds", "Time", buckets=(0.1, 1.0), registry=registry)
    for _ in range(requests):
        seconds.observe(0.05)
    Counter("outrider_outcomes_produced", "Produced", registry=registry).inc(requests)
    Counter("outrider_outcomes_stored", "Stored", registry=registry).inc(requests - pending)
    Gauge("outrider_outcomes_pending", "Pending", registry=registry).set(pending)
    Gauge("outrider_ready", "Ready", registry=registry).set(1)
    return generate_latest(registry).decode()


def test_parse_and_render_give_back_the_same_text() -> None:
    text = worker_text(3)
    assert render(parse(text)).decode() == text


def test_samples_are_summed_by_name_and_labels_and_skipped_families_left_out() -> None:
    first, second = parse(worker_text(3)), parse(worker_text(4))
    oldest = min(
        [
            *first["outrider_requests_created"].samples.values(),
            *second["outrider_requests_created"].samples.values(),
        ]
    )
    total = first
    add(total, second, skip={"outrider_ready"})
    samples = total["outrider_requests"].samples
    assert samples["outrider_requests_total", (("experiment", "split"), ("response_code", "200"))] == 7
    assert (
        total["outrider_request_duration_seconds"].samples["outrider_request_duration_seconds_count", ()] == 7
    )
    assert total["outrider_ready"].samples["outrider_ready", ()] == 1  # the first one's only
    assert [*total["outrider_requests_created"].samples.values()] == [oldest]  # not a sum


def test_a_lost_worker_keeps_its_counters_and_its_pending_outcomes_count_as_dropped() -> None:
    kept = retired_part(parse(worker_text(5, pending=2)))
    assert "outrider_outcomes_pending" not in kept  # gauges describe the living only
    assert "outrider_ready" not in kept
    dropped = kept["outrider_outcomes_dropped"].samples[
        ("outrider_outcomes_dropped_total", (("reason", LOST_REASON),))
    ]
    produced = kept["outrider_outcomes_produced"].samples["outrider_outcomes_produced_total", ()]
    stored = kept["outrider_outcomes_stored"].samples["outrider_outcomes_stored_total", ()]
    assert produced == stored + dropped == 5


def test_fleet_metrics_add_the_workers_and_keep_the_lost_ones() -> None:
    live = {101: "127.0.0.1:1", 102: "127.0.0.1:2"}
    fleet = FleetMetrics(lambda: live)
    fleet.last = {101: parse(worker_text(3)), 102: parse(worker_text(4))}
    assert (
        '\noutrider_requests_total{experiment="split",response_code="200"} 7.0\n' in fleet.render().decode()
    )
    del live[101]
    fleet.lost(101)
    fleet.last[103] = parse(worker_text(1))
    text = fleet.render().decode()
    assert '\noutrider_requests_total{experiment="split",response_code="200"} 8.0\n' in text
    assert "outrider_ready" not in text  # the supervisor's own (its LiveCollector), never the workers' sum


def test_the_leader_lock_has_one_holder_at_a_time(tmp_path: Path) -> None:
    first = LeaderLock.take(tmp_path)
    assert first is not None
    assert (tmp_path / "leader.lock").read_text().strip().isdigit()
    assert LeaderLock.take(tmp_path) is None  # another open file: refused without waiting
    first.release()
    again = LeaderLock.take(tmp_path)
    assert again is not None
    again.release()


async def test_a_follower_puts_the_leaders_newer_state_in_force(tmp_path: Path) -> None:
    experiment = load_experiment_text(canary_yaml("http://127.0.0.1:1", "http://127.0.0.1:2"), "t.yaml")
    path = tmp_path / "outrider.db"
    leader = StateKeeper(Router([experiment], 0.0), SqliteStateStore(path))
    await leader.restore()
    follower = Router([experiment], 0.0)
    watch = StateWatch(follower, SqliteStateStore(path))
    async with watch.following():
        await leader.change("split", "rolled_back", 0, "test")
        await watch.sync()
        assert follower.get("split").state.phase == "rolled_back"
        assert follower.get("split").state.weights == {"stable": 100.0}
        assert follower.get("split").state.version == leader.current("split").version
    leader.close()


async def test_a_follower_refuses_mutations_with_not_leader() -> None:
    experiment = load_experiment_text(canary_yaml("http://127.0.0.1:1", "http://127.0.0.1:2"), "t.yaml")
    app = admin_app(
        Router([experiment], 0.0), Metrics(), lambda: True, lambda: None, "t0k", follower=lambda: True
    )
    async with (
        TestClient(TestServer(app)) as client,
        client.post("/experiments/split/promote", headers={"Authorization": "Bearer t0k"}) as r,
    ):
        assert r.status == 503
        assert (await r.json())["code"] == "not_leader"


def test_the_reserved_port_takes_no_connection_but_a_reuse_port_listener_shares_it() -> None:
    held = reserve("127.0.0.1", 0)
    port = held.getsockname()[1]
    try:
        refused = socket.socket()
        assert refused.connect_ex(("127.0.0.1", port)) != 0  # bound, not listening: nobody answers
        refused.close()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        client = socket.create_connection(("127.0.0.1", port), timeout=2)
        accepted, _ = listener.accept()
        accepted.close()
        client.close()
        listener.close()
    finally:
        held.close()
