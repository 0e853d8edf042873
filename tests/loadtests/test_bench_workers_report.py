"""The workers benchmark's medians, ratios and verdicts, and its own generated section of the doc."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests import bench_doc
from loadtests.bench_parse import LoadResult
from loadtests.bench_workers_report import BEGIN, END, Sample, render_markdown, summarize, verdicts


def sample(
    round_no: int, target: str, rps: float, outrider_us: float, redis_us: float = 0.0, nginx_us: float = 12.0
) -> Sample:
    requests = int(rps * 10)
    per = requests / 1e6  # CPU seconds for 1 µs per request
    cpu = {"outrider": outrider_us * per, "wrk": 10 * per, "nginx": nginx_us * per, "redis": redis_us * per}
    cpu["supervisor"] = 1 * per if target == "workers-2" else 0.0
    return Sample(round_no, target, LoadResult(rps, 1.0, 5.0, requests, 0), 10.0, {**cpu, "machine": 20.0})


SAMPLES = [
    *(sample(r, "workers-1", 10_000, us) for r, us in ((1, 70), (2, 80), (3, 75))),
    *(
        sample(r, "workers-2", 12_000, us, nginx_us=ng)
        for r, us, ng in ((1, 84, 12), (2, 80, 15), (3, 90, 12))
    ),
    *(sample(r, "redis", 10_000, us, 2.0) for r, us in ((1, 74), (2, 83), (3, 79))),
]


def test_medians_ratios_and_what_the_redis_store_adds() -> None:
    s = summarize(SAMPLES)
    assert s["rounds"] == 3
    one = s["targets"]["workers-1"]
    assert one["us_per_request"]["outrider"] == pytest.approx(75)
    assert one["us_per_request"]["nginx"] == pytest.approx(12)
    assert one["outrider_range"] == pytest.approx([70, 80])
    assert s["workers_cpu_ratio"] == pytest.approx(84 / 75)
    assert s["workers_cpu_ratio_rounds"] == pytest.approx([84 / 70, 1.0, 90 / 75])
    assert s["workers_rps_ratio"] == pytest.approx(1.2)
    # the upstream does the same work per request in both: its change is the machine's (cores shared)
    assert s["upstream_cpu_ratio_rounds"] == pytest.approx([1.0, 15 / 12, 1.0])
    assert s["workers_cpu_ratio_vs_upstream"] == pytest.approx(84 / 70)  # median of 1.2, 0.8, 1.2
    assert s["redis_added_us"] == pytest.approx(4)
    assert s["redis_added_us_rounds"] == pytest.approx([4, 3, 4])
    assert s["redis_server_us"] == pytest.approx(2)
    assert s["targets"]["workers-2"]["us_per_request"]["supervisor"] == pytest.approx(1)
    # `other`: the machine's busy time (20 s of 10 s wall) less what the measured groups spent
    assert one["cores"]["other"] == pytest.approx((20 - 100_000 * (75 + 10 + 12) / 1e6) / 10)
    first, second = verdicts(s)
    assert "misses the 1.1× target" in first
    assert "outrider's ratio over the upstream's: 1.20×" in first
    assert "within the ≤ 10 µs target" in second


def test_its_section_leaves_the_other_generated_section_alone(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    bench_doc.update_doc(doc, "main figures")
    facts = {"date": "today", "wall_s": 90.0, "load": "wrk -t1 -c32 -d7s", "command": "x", "machine": {}}
    facts["machine"] = {"nproc": 2, "cpu_model": "x", "kernel": "6", "loadavg_at_start": [0.1]}
    bench_doc.update_doc(doc, render_markdown(summarize(SAMPLES), facts), BEGIN, END)
    bench_doc.update_doc(doc, "main figures, again")
    text = doc.read_text()
    assert text.index(bench_doc.END) < text.index(BEGIN)
    assert "main figures, again" in text
    assert "`--workers 2` (SQLite)" in text.split(BEGIN)[1]
