"""The dashboard writes figures as analysis.wording does: its `<wording>` block of JavaScript, run in the
real browser, gives the same text as the Python functions for e-values, other figures and steps."""

from __future__ import annotations

import math
import re

import pytest

from analysis.wording import evalue, figure, step_of
from tests.browser.conftest import Watched
from tests.conftest import REPO

pytestmark = pytest.mark.asyncio(loop_scope="session")

LOG_ES = [
    *(x / 8 for x in range(-160, 161)),  # e^-20 .. e^20 in small steps: every g-format boundary
    math.log(9.9951),  # rounds up to the next power of ten
    math.log(999.5),
    math.log(0.000099996),
    650.0,
    699.9,
    700.0,
    950.0,
    -950.0,
    math.log(10) * 1000,
    1e6,
]
FIGURES = [0.0, 1.0, -2.5, 0.98094, 221.66, 9999.5, 12345.678, 0.00012345, 1e-5, 123456789.0, -0.0421, 1e300]


def wording_js() -> str:
    """The dashboard's `// <wording>` ... `// </wording>` block."""
    html = (REPO / "proxy" / "admin" / "dashboard.html").read_text()
    match = re.search(r"// <wording>.*?\n(.*?)// </wording>", html, re.S)
    assert match is not None, "the dashboard has no <wording> block"
    return match.group(1)


async def test_the_dashboard_writes_figures_as_the_python_side_does(page: Watched) -> None:
    script = (
        wording_js() + "; ({e: LOG_ES.map(fmtE), f: FIGURES.map(fmtNum), s: STEPS.map(a => fmtStep(...a))})"
    )
    steps: list[tuple[int, list[int] | None]] = [(0, [5, 10, 25, 50]), (3, [5, 10, 25, 50]), (7, [5, 10])]
    steps += [(0, None), (0, [])]
    as_js = [[i, s] for i, s in steps]
    prelude = f"const LOG_ES = {LOG_ES!r}; const FIGURES = {FIGURES!r}; const STEPS = {as_js!r};".replace(
        "None", "null"
    )
    got = await page.page.evaluate(f"() => {{ {prelude} {script.replace('; ({', '; return ({', 1)} }}")
    assert got["e"] == [evalue(x) for x in LOG_ES]
    assert got["f"] == [figure(x) for x in FIGURES]
    assert got["s"] == [step_of(i, s) for i, s in steps]
    assert page.errors == []
