"""py-spy's collapsed stacks reduced to own and cumulative shares of the main thread."""

from __future__ import annotations

import pytest

from loadtests.bench_profile import summarize_raw

RAW = """\
<module> (outrider:1);main (cli.py:7);Runner.run (runners.py:8) 10
<module> (outrider:1);main (cli.py:7);Runner.run (runners.py:8);handle (edge.py:7) 30
<module> (outrider:1);main (cli.py:7);Runner.run (runners.py:8);handle (edge.py:7);send (f.py:1) 60
Thread._bootstrap (threading.py:988);SqliteOutcomeStore.write (experiments/sqlite_store.py:58) 25
not a stack line
"""


def test_own_and_cumulative_shares_of_the_main_thread() -> None:
    prof = summarize_raw(RAW, "py-spy record")
    assert prof.error is None
    assert prof.samples == 100
    assert dict(prof.own) == pytest.approx(
        {"send (f.py:1)": 0.6, "handle (edge.py:7)": 0.3, "Runner.run (runners.py:8)": 0.1}
    )
    assert prof.trunk[-1] == "Runner.run (runners.py:8)"
    assert dict(prof.cumulative) == pytest.approx({"handle (edge.py:7)": 0.9, "send (f.py:1)": 0.6})
    assert prof.other_threads == [("SqliteOutcomeStore.write (experiments/sqlite_store.py:58)", 0.2)]


def test_no_main_thread_samples_is_an_error_not_a_division_by_zero() -> None:
    assert summarize_raw("", "py-spy record").error is not None
