"""deploy/grafana/outrider.json: a loadable dashboard whose every query names only metrics and labels that a
real outrider exports (so it cannot rot silently), with valid PromQL when promtool is installed."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.deploy.conftest import PROMTOOL, REPO
from tests.deploy.promql import Inventory, references, unknown

DASHBOARD = REPO / "deploy" / "grafana" / "outrider.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
LABEL_VALUES = re.compile(r"label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)")
NEEDED = {
    "outrider_requests_total",
    "outrider_request_duration_seconds_bucket",
    "outrider_decisions_total",
    "outrider_experiment_weight",
    "outrider_experiment_phase",
    "outrider_srm_flagged",
    "outrider_outcomes_produced_total",
    "outrider_outcomes_stored_total",
    "outrider_outcomes_pending",
    "outrider_outcomes_dropped_total",
    "outrider_shadow_agreement",
    "outrider_shadow_queue_depth",
    "outrider_shadow_dropped_total",
    "outrider_webhook_deliveries_total",
}


def load() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(DASHBOARD.read_bytes())
    return doc


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in doc["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def queries(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every target, annotation and template variable (label_values unwrapped)."""
    out = [(f"panel {p['title']!r}", t["expr"]) for p in panels(doc) for t in p.get("targets", [])]
    out += [(f"annotation {a['name']!r}", a["expr"]) for a in doc["annotations"]["list"] if "expr" in a]
    for var in doc["templating"]["list"]:
        if var["type"] == "query":
            match = LABEL_VALUES.fullmatch(var["query"])
            assert match, var["query"]
            out.append((f"variable {var['name']!r}", f"sum by ({match.group(2)}) ({match.group(1)})"))
    return out


def as_prometheus(expr: str) -> str:
    """Grafana's variables replaced by what Prometheus would receive."""
    return expr.replace("$__rate_interval", "5m").replace("$experiment", ".*").replace("$instance", ".*")


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    doc = load()
    assert doc["schemaVersion"] >= 36
    assert doc["uid"] == "outrider"
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["experiment"]["query"].startswith("label_values(outrider_requests_total")
    assert variables["experiment"]["query"].endswith(", experiment)")
    ids = [p["id"] for p in panels(doc)]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in panels(doc):
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(pos["x"] + dx, pos["y"] + dy) for dx in range(pos["w"]) for dy in range(pos["h"])}
        assert not cells & taken, f"{panel['title']!r} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == DATASOURCE for t in panel["targets"]), panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"]), panel["title"]


def test_every_query_names_only_what_a_real_outrider_exports(live_metrics: Inventory) -> None:
    doc = load()
    problems = [
        f"{where}: {p}" for where, expr in queries(doc) for p in unknown(references(expr), live_metrics)
    ]
    assert problems == []
    used = {name for _, expr in queries(doc) for name in references(expr).metrics}
    assert used >= NEEDED, f"panels missing for {sorted(NEEDED - used)}"


def test_the_checker_catches_a_misspelt_metric_or_label(live_metrics: Inventory) -> None:
    assert unknown(
        references("sum by (destination_version) (rate(outrider_request_total[5m]))"), live_metrics
    )
    assert unknown(references('rate(outrider_requests_total{destination="x"}[5m])'), live_metrics)
    assert unknown(references("sum by (variant) (rate(outrider_requests_total[5m]))"), live_metrics)
    assert not unknown(references("sum by (variant) (outrider_experiment_weight)"), live_metrics)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    rules = [
        {"record": f"dashboard:query:{i}", "expr": as_prometheus(expr)}
        for i, (_, expr) in enumerate(queries(load()))
    ]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
