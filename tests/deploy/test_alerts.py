"""deploy/prometheus/alerts.yml: promtool accepts the rules and its unit tests pass (alerts_test.yml: each
alert fires on the series meant for it and only then); without promtool, the structure is checked here.
Either way every expression names only metrics and labels a real outrider exports."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import PROMTOOL, REPO
from tests.deploy.promql import Inventory, references, unknown

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
NEEDED = {
    "OutriderCandidateRolledBack",
    "OutriderOutcomesDropped",
    "OutriderSampleRatioMismatch",
    "OutriderUpstreamErrorRatioHigh",
    "OutriderDown",
    "OutriderNotReady",
    "OutriderShadowQueueSaturated",
    "OutriderShadowCircuitOpen",
    "OutriderWebhookFailing",
}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_rules_are_well_formed() -> None:
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    groups = [g["name"] for g in doc["groups"]]
    assert len(groups) == len(set(groups))
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names))
    assert set(names) >= NEEDED
    for rule in rules():
        assert set(rule) <= RULE_KEYS, rule["alert"]
        assert re.fullmatch(r"Outrider[A-Z][A-Za-z]+", rule["alert"])
        assert isinstance(rule["expr"], str)
        assert rule["expr"].strip()
        assert DURATION.match(rule.get("for", "0s")), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]


def test_every_expression_names_only_what_a_real_outrider_exports(live_metrics: Inventory) -> None:
    problems = [f"{r['alert']}: {p}" for r in rules() for p in unknown(references(r["expr"]), live_metrics)]
    assert problems == []


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")
@pytest.mark.parametrize(
    "check", [("check", "rules", RULES), ("test", "rules", RULE_TESTS)], ids=["check", "test"]
)
def test_promtool(check: tuple[str, str, object]) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, *map(str, check)], capture_output=True, text=True, cwd=RULES.parent, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
