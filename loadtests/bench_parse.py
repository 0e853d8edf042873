"""Reading the text that wrk and hey print into one `LoadResult` (throughput, p50, p99, counts).

Usage: result = parse_wrk(stdout_of_wrk_with_latency); result = parse_hey(stdout_of_hey)
Both raise `ValueError` naming the missing figure when the output is not what a finished run prints.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WRK_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one load run measured. `errors` counts non-2xx answers and socket errors/timeouts."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us_per_request: float | None = None
    """Process CPU (user + system) of the proxy under test divided by `requests`; None where not measured."""


def _find(pattern: str, text: str, what: str) -> re.Match[str]:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise ValueError(f"no {what} in the load generator's output:\n{text[-2000:]}")
    return match


def _wrk_ms(value: str, unit: str) -> float:
    return float(value) * WRK_UNITS_MS[unit]


def parse_wrk(text: str) -> LoadResult:
    """The figures of `wrk --latency` (its `Latency Distribution` section is required)."""
    wrk_time = r"([\d.]+)(us|ms|s|m|h)\s*$"
    p50 = _find(r"^\s*50%\s+" + wrk_time, text, "50% latency")
    p99 = _find(r"^\s*99%\s+" + wrk_time, text, "99% latency")
    requests = int(_find(r"^\s*(\d+) requests in ", text, "request count").group(1))
    rps = float(_find(r"^Requests/sec:\s+([\d.]+)", text, "Requests/sec").group(1))
    errors = 0
    if non_2xx := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text):
        errors += int(non_2xx.group(1))
    if sockets := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors += sum(int(n) for n in sockets.groups())
    return LoadResult(rps, _wrk_ms(*p50.groups()), _wrk_ms(*p99.groups()), requests, errors)


def parse_hey(text: str) -> LoadResult:
    """The figures of hey's default summary (latency quantiles are printed in seconds)."""
    rps = float(_find(r"^\s*Requests/sec:\s+([\d.]+)", text, "Requests/sec").group(1))
    p50 = float(_find(r"^\s*50%+ in ([\d.]+) secs", text, "50% latency").group(1)) * 1e3
    p99 = float(_find(r"^\s*99%+ in ([\d.]+) secs", text, "99% latency").group(1)) * 1e3
    by_status = {
        int(code): int(n) for code, n in re.findall(r"^\s*\[(\d{3})\]\s+(\d+) responses", text, re.MULTILINE)
    }
    if not by_status:
        raise ValueError(f"no status code distribution in hey's output:\n{text[-2000:]}")
    _, _, error_section = text.partition("Error distribution:")
    failed = sum(int(n) for n in re.findall(r"^\s*\[(\d+)\]", error_section, re.MULTILINE))
    bad = sum(n for code, n in by_status.items() if not 200 <= code < 400)
    return LoadResult(rps, p50, p99, sum(by_status.values()), bad + failed)
