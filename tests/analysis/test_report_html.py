"""report.html: every section and plot present, self-contained, well-formed, and faithful to report.json.

The documents are real: synthetic outcome records judged by the real engine through `report_doc` (the same
path as the live, data-dir and export reports), one per kind of ending — PROMOTE, ROLLBACK, INCONCLUSIVE,
still running, no record at all — with and without a shadow.
"""

from __future__ import annotations

import math
import random
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from analysis.engine import Judge
from analysis.offline import analyze_records, report_doc
from analysis.report import render_markdown, write_report
from analysis.report_html import fmt, render_html
from analysis.report_series import decision_marks
from experiments.builder import Analysis, Canary, Compare, ExperimentDoc, Guardrail, Shadow, Variant
from experiments.config import load_experiment_text
from experiments.model import Experiment
from experiments.outcome import OutcomeRecord
from experiments.state import initial_state, transition

EXPERIMENT = ExperimentDoc(
    "exp",
    (Variant.stable("http://127.0.0.1:1"), Variant.candidate("http://127.0.0.1:2")),
    Canary((50,)),
    salt="s",
)
GUARDRAILS = (Guardrail("error_rate", 1.2), Guardrail("latency_gmean", 1.1))
SHADOW = Shadow(compare=Compare("oip-top1", agreement_min=0.99))
# (stable error rate, candidate error rate, candidate latency factor, records, maxRequests)
SCENARIOS = {
    "PROMOTE": (0.05, 0.005, 0.7, 6000, 100_000),
    "ROLLBACK": (0.01, 0.15, 1.0, 3000, 100_000),
    "INCONCLUSIVE": (0.03, 0.03, 1.0, 3000, 700),
    "CONTINUE": (0.03, 0.03, 1.0, 300, 100_000),
    "EMPTY": (0.03, 0.03, 1.0, 0, 100_000),
}
PLOTS = ("plot-evalues", "plot-intervals", "plot-weights", "plot-latency")


def make_experiment(shadow: bool, max_requests: int) -> Experiment:
    doc = EXPERIMENT.with_(analysis=Analysis(GUARDRAILS, alpha=0.05, max_requests=max_requests))
    if shadow:
        doc = doc.adding(Variant.shadow("http://127.0.0.1:3", "int8")).with_(shadow=SHADOW)
    return load_experiment_text(doc.yaml(), "exp.yaml")


def make_records(scenario: str, shadow: bool, seed: int = 7) -> list[OutcomeRecord]:
    err_a, err_b, slower, n, _ = SCENARIOS[scenario]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        on_b = rng.random() < 0.5
        failed = rng.random() < (err_b if on_b else err_a)
        latency = rng.lognormvariate(math.log(10.0 * (slower if on_b else 1.0)), 0.3)
        pairs = [{"variant": "int8", "status": 200, "error": None, "latency_ms": latency, "agree": True}]
        out.append(
            OutcomeRecord(
                f"r{i}",
                1_000_000.0 + i,
                "exp",
                "candidate" if on_b else "stable",
                0.5,
                500 if failed else 200,
                None,
                latency,
                latency * 0.9,
                f"u{i}",
                pairs if shadow else [],
            )
        )
    return out


_DOCS: dict[tuple[str, bool], dict[str, Any]] = {}


def report(scenario: str, shadow: bool = False) -> dict[str, Any]:
    """The report.json document of a scenario, as written and read back (cached: the replay takes ~0.2 s)."""
    key = (scenario, shadow)
    if key not in _DOCS:
        experiment = make_experiment(shadow, SCENARIOS[scenario][4])
        doc = report_doc(experiment, make_records(scenario, shadow), Judge, now=2_000_000.0)
        _DOCS[key] = orjson.loads(orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY))
    return _DOCS[key]


class StrictParser(HTMLParser):
    """Collects ids and fails on any unbalanced or mismatched tag (html.parser itself never complains)."""

    VOID = frozenset({"meta", "br", "img", "hr", "input", "link"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: dict[str, dict[str, str | None]] = {}
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            if found["id"] in self.ids:
                self.errors.append(f"duplicate id {found['id']}")
            self.ids[str(found["id"])] = found
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("id"):
            self.ids[str(found["id"])] = found

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def parsed(html: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(html)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("shadow", [False, True])
def test_every_section_and_plot_is_present_and_the_page_is_well_formed(scenario: str, shadow: bool) -> None:
    doc = report(scenario, shadow)
    html = render_html(doc)
    parser = parsed(html)
    expected = {"decision", "scorecard", "quality", "timeline", *PLOTS}
    assert expected <= set(parser.ids)
    assert ("plot-shadow" in parser.ids) is shadow
    for plot in (*PLOTS, *(["plot-shadow"] if shadow else [])):
        assert parser.ids[plot]["class"] == "plot"
    banner = re.search(r'<section id="decision"[^>]*>.*?</section>', html, re.S)
    assert banner is not None
    assert doc["decision"] in banner.group(0)
    css = {"PROMOTE": "promote", "ROLLBACK": "rollback"}.get(doc["decision"], "neutral")
    assert f'class="{css}"' in banner.group(0)
    for svg in re.findall(r"<svg\b.*?</svg>", html, re.S):
        ET.fromstring(svg)  # every chart is well-formed XML


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_the_scenarios_end_as_intended(scenario: str) -> None:
    doc = report(scenario)
    expected = {"EMPTY": "CONTINUE"}.get(scenario, scenario)
    assert doc["decision"] == expected
    assert bool(doc["series"]["looks"]["records"]) is (scenario != "EMPTY")


def test_the_page_is_self_contained() -> None:
    html = render_html(report("ROLLBACK", shadow=True))
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "http://" not in html
    assert "https://" not in html
    for banned in ("<script", "<link", "@import", "<iframe", "<img"):
        assert banned not in html.lower()
    assert set(re.findall(r"url\(([^)]*)\)", html)) <= {
        f"#clip-{c}" for c in re.findall(r'clipPath id="clip-([\w-]+)"', html)
    }
    assert "@media print" in html


class Cells(HTMLParser):
    """The scorecard's numeric cells: (metric, role) → {key: (data-value, text)}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
        self.row: tuple[str, str] | None = None
        self.cell: tuple[str, str] | None = None
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-metric"):
            self.row = (str(a["data-metric"]), str(a["data-role"]))
            self.rows[self.row] = {}
        if tag == "td" and self.row is not None and a.get("data-key") and "data-value" in a:
            self.cell, self.text = (str(a["data-key"]), str(a["data-value"])), ""

    def handle_data(self, data: str) -> None:
        self.text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None and self.row is not None:
            self.rows[self.row][self.cell[0]] = (self.cell[1], self.text)
            self.cell = None
        if tag == "tr":
            self.row = None


@pytest.mark.parametrize("scenario", ["PROMOTE", "ROLLBACK", "INCONCLUSIVE"])
def test_the_scorecard_shows_the_numbers_of_report_json(scenario: str) -> None:
    doc = report(scenario)
    cells = Cells()
    cells.feed(render_html(doc))
    assert len(cells.rows) == len(doc["metrics"]) == 2
    for m in doc["metrics"]:
        row = cells.rows[(m["name"], m["role"])]
        for key in ("estimate", "log_e_harm", "log_e_noninf"):
            assert float(row[key][0]) == m[key]
        assert row["estimate"][1] == fmt(m["estimate"])
        for arm in ("stable", "candidate"):
            value = doc["arms"][arm][m["name"]]
            assert float(row[arm][0]) == value
            assert row[arm][1] == fmt(value)
    rollback = next(m for m in report("ROLLBACK")["metrics"] if m["name"] == "error_rate")
    assert rollback["harm"] is True


def test_the_series_at_the_decision_is_the_snapshot_the_decision_was_taken_on() -> None:
    doc = report("ROLLBACK")
    decision = doc["history"][-1]
    looks = doc["series"]["looks"]
    i = looks["records"].index(decision["at_records"])
    for column, taken in zip(looks["metrics"], decision["snapshot"]["metrics"], strict=True):
        assert column["name"] == taken["name"]
        for key in ("log_e_harm", "log_e_noninf", "estimate", "ci_low", "ci_high"):
            assert column[key][i] == taken[key]
    assert looks["candidate_requests"][i] == decision["at_candidate_requests"]
    assert looks["weight"][i] == 0.0  # rolled back at this look
    assert looks["weight"][i - 1] == 50.0
    [mark] = doc["series"]["decisions"]
    assert (mark["kind"], mark["records"], mark["weight"]) == ("ROLLBACK", decision["at_records"], 0.0)
    assert doc["series"]["initial_weight"] == 50.0
    assert doc["thresholds"] == {"alpha": 0.05, "harm": 40.0, "pass": 20.0}


def test_an_export_report_decides_as_analyze_does() -> None:
    experiment = make_experiment(False, 100_000)
    records = make_records("ROLLBACK", False)
    result = analyze_records(experiment, records, Judge)
    doc = report("ROLLBACK")
    assert (doc["decision"], doc["decided_at"]) == (result["decision"], result["decided_at"])
    assert doc["reasons"] == result["reasons"]


def test_a_manual_change_is_placed_on_the_records_axis_by_its_time() -> None:
    experiment = make_experiment(False, 100_000)
    doc = report("CONTINUE")
    state = transition(
        experiment, initial_state(experiment), "paused", 0, 1_000_150.5, "manual pause (admin API)"
    )
    [mark] = decision_marks(experiment, state, doc["series"]["looks"])
    # Record i has ts 1_000_000 + i: the first look at or after t = 150.5 is the one ending at record 200.
    assert (mark["kind"], mark["records"], mark["phase"]) == ("MANUAL", 200, "paused")


def test_latency_histogram_counts_every_response_per_variant() -> None:
    doc = report("PROMOTE")
    hist = doc["series"]["latency_histogram"]
    assert len(hist["edges"]) == len(hist["counts"]["stable"]) + 1
    assert sum(hist["counts"]["stable"]) + sum(hist["counts"]["candidate"]) == SCENARIOS["PROMOTE"][3]
    assert all(a < b for a, b in zip(hist["edges"], hist["edges"][1:], strict=False))


@pytest.mark.parametrize(
    ("change", "check", "status"),
    [
        ({"srm": {"log_bf": 9.0, "flagged": True}}, "sample ratio", "fail"),
        ({"drops": {"candidate": 50}}, "outcome drops", "fail"),
        ({"drops": {"candidate": 1}}, "outcome drops", "warn"),
        ({"feedback": {"timely": 3, "late": 9, "arrival_share": 0.001}}, "feedback arrival", "warn"),
        ({}, "sample ratio", "pass"),
    ],
)
def test_data_quality_badges(change: dict[str, Any], check: str, status: str) -> None:
    doc = {**report("PROMOTE"), **change}
    html = render_html(doc)
    row = re.search(rf'<tr data-check="{check}" data-status="(\w+)">', html)
    assert row is not None
    assert row.group(1) == status
    word = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}[status]
    assert re.search(rf'<tr data-check="{check}"[^>]*><td><span class="badge {status}">[^<]*{word}', html)


def test_a_report_written_before_series_existed_still_renders() -> None:
    doc = {k: v for k, v in report("ROLLBACK").items() if k not in ("series", "arms", "thresholds")}
    parser = parsed(render_html(doc))
    assert {"decision", *PLOTS} <= set(parser.ids)


def test_write_report_writes_json_markdown_and_html(tmp_path: Path) -> None:
    paths = write_report(report("ROLLBACK", shadow=True), tmp_path / "out")
    assert [p.name for p in paths] == ["report.json", "report.md", "report.html"]
    doc = orjson.loads(paths[0].read_bytes())
    assert paths[2].read_text() == render_html(doc)
    assert "ROLLBACK" in paths[1].read_text()


def test_a_running_experiment_is_reported_with_the_last_look_status_shows() -> None:
    from analysis.report import build_report

    experiment = make_experiment(False, 100_000)
    state = initial_state(experiment, now=1.0)
    doc = build_report(experiment, state, {"metrics": [], "last_look": "WARMUP"}, now=2.0)
    assert doc["decision"] == "WARMUP"  # as `status` and the API's last look say, not a made-up CONTINUE
    assert doc["steps"] == [50.0]
    rolled = transition(experiment, state, "rolled_back", 0, 3.0, "ROLLBACK: harm")
    markdown = render_markdown(build_report(experiment, rolled, {"metrics": []}, now=4.0))
    assert "| 2 | rolled_back | 1/1 | ROLLBACK: harm |" in markdown  # steps counted from 1
