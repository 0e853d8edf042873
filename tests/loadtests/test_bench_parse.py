"""wrk and hey output, as they print it, read into load results."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loadtests.bench_parse import LoadResult, parse_hey, parse_wrk

WRK = """\
Running 8s test @ http://127.0.0.1:45693/v2/models/digits/infer
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms    1.05ms   9.45ms   90.94%
    Req/Sec     4.39k   738.00     5.06k    70.00%
  Latency Distribution
     50%  788.00us
     75%    0.93ms
     90%    1.94ms
     99%    1.02s
  35042 requests in 8.00s, 18.26MB read
  Socket errors: connect 0, read 2, write 0, timeout 5
  Non-2xx or 3xx responses: 17
Requests/sec:   4380.25
Transfer/sec:      2.28MB
"""

HEY = """\
Summary:
  Total:\t8.0148 secs
  Slowest:\t0.0246 secs
  Fastest:\t0.0008 secs
  Average:\t0.0013 secs
  Requests/sec:\t399.4186

Latency distribution:
  10% in 0.0009 secs
  50% in 0.0011 secs
  90% in 0.0023 secs
  95% in 0.0042 secs
  99% in 0.0101 secs

Status code distribution:
  [200]\t3190 responses
  [503]\t3 responses

Error distribution:
  [2]\tPost "http://127.0.0.1:1/x": dial tcp 127.0.0.1:1: connect: connection refused
"""


def test_wrk_figures_and_units() -> None:
    result = parse_wrk(WRK)
    assert result.rps == pytest.approx(4380.25)
    assert result.p50_ms == pytest.approx(0.788)
    assert result.p99_ms == pytest.approx(1020.0)
    assert result.requests == 35042
    assert result.errors == 17 + 2 + 5
    assert result.cpu_us_per_request is None


def test_wrk_without_errors_counts_none() -> None:
    clean = "\n".join(line for line in WRK.splitlines() if "errors" not in line and "Non-2xx" not in line)
    assert parse_wrk(clean).errors == 0


def test_hey_figures() -> None:
    result = parse_hey(HEY)
    assert result.rps == pytest.approx(399.4186)
    assert result.p50_ms == pytest.approx(1.1)
    assert result.p99_ms == pytest.approx(10.1)
    assert result.requests == 3193
    assert result.errors == 3 + 2


@pytest.mark.parametrize(
    ("parse", "text"), [(parse_wrk, WRK.replace("99%", "98%")), (parse_hey, "Summary:\n")]
)
def test_unfinished_output_names_what_is_missing(parse: Callable[[str], LoadResult], text: str) -> None:
    with pytest.raises(ValueError, match="no "):
        parse(text)
