"""Medians over rounds, the ratios the issue asks for, and the generated part of docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.bench_doc import BEGIN, END, update_doc
from loadtests.bench_parse import LoadResult
from loadtests.bench_report import Run, ratios, summarize


def run(round_no: int, target: str, rps: float, p99: float, cpu: float | None) -> Run:
    return Run(round_no, "fixed", target, "saturating", LoadResult(rps, 1.0, p99, int(rps), 1, cpu))


def test_medians_over_rounds_and_ratios() -> None:
    runs = [
        run(1, "direct", 1000, 1.0, None),
        run(2, "direct", 3000, 3.0, None),
        run(3, "direct", 2000, 2.0, None),
        run(1, "nginx", 1600, 2.0, 50),
        run(2, "nginx", 1600, 2.0, 50),
        run(3, "nginx", 1600, 2.0, 50),
        run(1, "outrider", 400, 8.0, 700),
        run(2, "outrider", 500, 9.0, 600),
        run(3, "outrider", 600, 1.0, 650),
        run(1, "bare", 800, 4.0, 300),
        run(2, "bare", 800, 4.0, 300),
        run(3, "bare", 800, 4.0, 300),
    ]
    cells = summarize(runs)
    outrider = cells[("fixed", "saturating", "outrider")]
    assert (outrider.rps, outrider.p99_ms, outrider.cpu_us_per_request) == (500, 8.0, 650)
    assert outrider.errors == 3
    assert cells[("fixed", "saturating", "direct")].cpu_us_per_request is None
    r = ratios(cells, "fixed", "saturating")
    assert r["outrider/direct throughput"] == pytest.approx(0.25)
    assert r["outrider/nginx p99"] == pytest.approx(4.0)
    assert r["outrider/nginx cpu"] == pytest.approx(13.0)
    assert r["outrider/bare cpu"] == pytest.approx(650 / 300)
    assert ratios(cells, "model", "saturating")["outrider/direct p50"] is None


def test_only_the_text_between_the_markers_is_replaced(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\nprose\n{BEGIN}\nold figures\n{END}\nmore prose\n")
    update_doc(doc, "new figures")
    assert doc.read_text() == f"# Benchmarks\nprose\n{BEGIN}\nnew figures\n{END}\nmore prose\n"
    fresh = tmp_path / "fresh.md"
    update_doc(fresh, "figures")
    assert fresh.read_text().endswith(f"{BEGIN}\nfigures\n{END}\n")
