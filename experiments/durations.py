"""Durations in config files: `"500ms"`, `"1s"`, `"2.5s"`, `"5m"`, `"1h"`, `"1m30s"`, or a number of seconds.

Usage: `parse_duration("2.5s") == 2.5`
"""

from __future__ import annotations

import math
import re

from experiments.yamlmarks import describe

DURATION_PATTERN = r"^((\d+(\.\d+)?|\.\d+)(ms|s|m|h))+$"
"""What a duration string looks like (also in the JSON Schema); the parser accepts exactly these."""

HINT = "write a number with a unit (ms, s, m, h), like 500ms, 1s, 2.5s, 5m or 1h, or a number of seconds"

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)")


def parse_duration(value: object) -> float:
    """Seconds in `value` a duration string or number of seconds; ValueError with a readable message if not.

    Durations must be finite and greater than zero: no outrider setting means anything with a zero wait.
    """
    if isinstance(value, str):
        if re.fullmatch(DURATION_PATTERN, value) is None:
            raise ValueError(f"bad duration {value!r}: {HINT}")
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(value))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
    else:
        raise ValueError(f"expected a duration, got {describe(value)}: {HINT}")
    if not math.isfinite(seconds):
        raise ValueError(f"duration must be finite, got {describe(value)}")
    if seconds <= 0:
        raise ValueError(f"duration must be greater than zero, got {describe(value)}")
    return seconds
