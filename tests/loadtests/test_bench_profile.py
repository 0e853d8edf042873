"""py-spy's collapsed stacks reduced to own and cumulative shares of the main thread."""

from __future__ import annotations

import pytest

from loadtests.bench_profile import owner, summarize_raw

RAW = """\
<module> (outrider:1);main (cli.py:7);Runner.run (runners.py:8) 10
<module> (outrider:1);main (cli.py:7);Runner.run (runners.py:8);handle (edge.py:7) 30
<module> (outrider:1);main (cli.py:7);Runner.run (runners.py:8);handle (edge.py:7);send (f.py:1) 60
Thread._bootstrap (threading.py:988);SqliteOutcomeStore.write (experiments/sqlite_store.py:58) 25
not a stack line
"""


def test_own_and_cumulative_shares_of_the_main_thread() -> None:
    prof = summarize_raw(RAW, "py-spy record", ticks=200)
    assert prof.error is None
    assert prof.samples == 100
    assert dict(prof.own) == pytest.approx(
        {"send (f.py:1)": 0.6, "handle (edge.py:7)": 0.3, "Runner.run (runners.py:8)": 0.1}
    )
    assert prof.trunk[-1] == "Runner.run (runners.py:8)"
    assert dict(prof.cumulative) == pytest.approx({"handle (edge.py:7)": 0.9, "send (f.py:1)": 0.6})
    assert prof.busy == pytest.approx(0.5)
    assert prof.other_threads == [("SqliteOutcomeStore.write (experiments/sqlite_store.py:58)", 0.125)]


def test_no_main_thread_samples_is_an_error_not_a_division_by_zero() -> None:
    assert summarize_raw("", "py-spy record", ticks=200).error is not None


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        (["<module> (outrider:1)", "Runner.run (asyncio/runners.py:86)"], "uvloop (C)"),
        (["Edge.handle (proxy/dataplane/edge.py:76)", "uuid4 (uuid.py:721)"], "outrider"),
        (["Record._emit (proxy/filters/record.py:50)", "__init__ (<string>:2)"], "outrider"),
        (["Forward._send (proxy/filters/forward.py:69)", "_request (aiohttp/client.py:558)"], "aiohttp"),
        (["main (x.py:1)", "create_task (asyncio/tasks.py:376)"], "x"),
        (["create_task (asyncio/tasks.py:376)"], "standard library"),
    ],
)
def test_a_sample_counts_for_the_innermost_frame_outside_the_standard_library(
    frames: list[str], expected: str
) -> None:
    assert owner(frames) == expected
