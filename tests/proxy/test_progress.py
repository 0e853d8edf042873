"""The progress bar: silent and free off a terminal, throttled on one; `outrider analyze` draws it on a real
pseudo-terminal and leaves stdout byte-for-byte the same."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
from pathlib import Path

import orjson

from experiments.builder import Analysis, Canary, ExperimentDoc, Guardrail, Variant
from proxy.cli.progress import REDRAW_S, Bar, human, tracked
from tests.support.procs import outrider_cmd


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_nothing_is_written_and_the_total_is_never_computed() -> None:
    def total() -> int:
        raise AssertionError("counting is work; skipped when nobody sees the bar")

    stream = io.StringIO()
    with Bar("export", total=total, stream=stream) as bar:
        for _ in range(1000):
            bar.advance()
    assert bar.done == 1000
    assert stream.getvalue() == ""


def test_on_a_terminal_redraws_are_throttled_and_the_last_line_is_complete() -> None:
    stream, clock = Terminal(), Clock()
    with Bar("export", total=lambda: 300, stream=stream, clock=clock) as bar:
        for i in range(300):
            clock.now = i * REDRAW_S / 10  # ten advances per redraw interval
            bar.advance()
    frames = stream.getvalue().split("\r")[1:]
    assert 30 <= len(frames) <= 33  # the first draw, one per interval, the final one — not 300
    assert frames[-1] == f"export  [{'#' * 24}] 100%  300 records / 300 records  {clock.now:.1f}s\x1b[K\n"
    shown = [re.match(r"export  \[(#*)\.*\] +\d+%  (\d+) records / 300 records", f) for f in frames]
    done = [int(m.group(2)) for m in shown if m]
    assert len(done) == len(frames)
    assert done == sorted(done)
    assert all(len(m.group(1)) == round(int(m.group(2)) / 300 * 24) for m in shown if m)


def test_bytes_are_shown_in_binary_units_and_tracked_lines_advance_by_length() -> None:
    assert [human(n, "bytes") for n in (512, 2048, 5 * 2**20, 3 * 2**30)] == [
        "512 B",
        "2.0 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]
    bar = Bar("reading", unit="bytes", stream=io.StringIO())
    assert list(tracked([b"ab\n", b"cdef\n"], bar)) == [b"ab\n", b"cdef\n"]
    assert bar.done == 8


def analyze_on(tmp_path: Path, stderr_tty: bool) -> tuple[bytes, bytes]:
    """(stdout, stderr) of `outrider analyze` with stderr on a pseudo-terminal or a pipe."""
    (tmp_path / "e.yaml").write_text(EXPERIMENT)
    lines = [
        orjson.dumps({**RECORD, "request_id": f"r{i}", "variant": ("stable", "candidate")[i % 2]})
        for i in range(400)
    ]
    (tmp_path / "x.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    cmd = outrider_cmd("analyze", str(tmp_path / "x.jsonl"), "-c", str(tmp_path / "e.yaml"), "--json")
    if not stderr_tty:
        done = subprocess.run(cmd, capture_output=True, timeout=60, check=True)
        return done.stdout, done.stderr
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=follower, timeout=60, check=True)
    finally:
        os.close(follower)
    seen = b""
    try:
        while chunk := os.read(leader, 65536):
            seen += chunk
    except OSError:  # EIO: the terminal's other side is closed
        pass
    finally:
        os.close(leader)
    return done.stdout, seen


def test_analyze_draws_on_a_terminal_only_and_stdout_is_unchanged(tmp_path: Path) -> None:
    piped_out, piped_err = analyze_on(tmp_path, stderr_tty=False)
    tty_out, tty_err = analyze_on(tmp_path, stderr_tty=True)
    assert piped_err == b""
    assert b"reading  [########################] 100%" in tty_err
    assert b"judging 400 records" in tty_err
    assert tty_out == piped_out
    assert orjson.loads(tty_out)["records"] == 400


EXPERIMENT = ExperimentDoc(
    "bar",
    (Variant.stable("http://127.0.0.1:9"), Variant.candidate("http://127.0.0.1:9")),
    Canary((50,)),
    analysis=Analysis((Guardrail("error_rate", 1.2),)),
).yaml()
RECORD = {
    "ts": 1.0,
    "experiment": "bar",
    "p_variant": 0.5,
    "status": 200,
    "error": None,
    "latency_ms": 10.0,
    "upstream_ms": 9.0,
    "unit": "u",
    "shadows": [],
    "reward": None,
    "pinned": False,
    "state_version": 1,
}


def test_bar_and_the_demo_canary_bar() -> None:
    from proxy.cli.progress import bar
    from proxy.demo.report import canary_bar

    assert bar(0.5, width=4) == "[##--]"
    assert bar(2.0, width=3) == "[###]"
    assert bar(-1.0, width=2) == "[--]"
    steps = {"strategy": {"steps": [5, 10, 25, 50]}}
    assert canary_bar({**steps, "step": 0, "phase": "progressing"}) == bar(1 / 5, width=12)
    assert canary_bar({**steps, "step": 3, "phase": "progressing"}) == bar(4 / 5, width=12)
    assert canary_bar({**steps, "step": 1, "phase": "rolled_back"}) == bar(1.0, width=12)
