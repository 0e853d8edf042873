"""How outrider writes its figures for people — one place, so that the decision reasons, `outrider
status`, `outrider analyze`, the demo, the reports and the dashboard (whose JavaScript follows the same rules;
a browser test compares them) say the same thing the same way.

- An e-value has 3 significant digits in Python's `g` form: `62.2`, `0.403`, `1.04e+05`. It is computed from
  its log, so an astronomically large one is still written that way (`3.1e+412`), never as inf.
- Any other figure has 4 significant digits (`0.9809`, `221.7`); `—` when there is none.
- `A / B` is always a value and the threshold it is held against (`e harm 62.2 / 60`), never two values.
- Canary steps are counted from 1 of the plan: `step 2/4` is the second of four steps (the API's `step` field
  stays the 0-based index it always was; its `step_number` is this one).

Usage: evalue(log_e) · figure(x) · step_of(index, steps)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

NONE = "—"
_LN10 = math.log(10.0)


def evalue(log_e: object) -> str:
    """An e-value from its natural log (`—` for none)."""
    if not isinstance(log_e, int | float) or math.isnan(log_e):
        return NONE
    if log_e == math.inf:
        return "∞"
    if log_e == -math.inf:
        return "0"
    if abs(log_e) < 700.0:  # exp() is exact enough and finite here
        return f"{math.exp(log_e):.3g}"
    exponent10 = log_e / _LN10
    power = math.floor(exponent10)
    mantissa = f"{10.0 ** (exponent10 - power):.3g}"
    if mantissa == "10":  # 9.996 rounds up
        mantissa, power = "1", power + 1
    return f"{mantissa}e{power:+03d}"


def figure(value: object) -> str:
    """Any other figure: 4 significant digits (`—` for none, NaN or ±inf)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return NONE
    return f"{value:.4g}"


def step_of(index: object, steps: Sequence[object] | None) -> str:
    """`2/4`: the step in force, counted from 1, of a canary's plan (`—` for other strategies)."""
    if not steps or not isinstance(index, int):
        return NONE
    return f"{min(index, len(steps) - 1) + 1}/{len(steps)}"
