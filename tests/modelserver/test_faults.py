"""Fault injection: seeded, bounded, and a no-op by default."""

from __future__ import annotations

import random
import time

import pytest

from modelserver.faults import Faults


def test_same_seed_fails_the_same_requests() -> None:
    a = Faults(error_rate=0.3, rng=random.Random(5))
    b = Faults(error_rate=0.3, rng=random.Random(5))
    draws = [a.should_fail() for _ in range(200)]
    assert draws == [b.should_fail() for _ in range(200)]
    assert 30 < sum(draws) < 90


def test_rate_zero_never_fails_and_consumes_no_randomness() -> None:
    rng = random.Random(1)
    faults = Faults(rng=rng)
    assert not any(faults.should_fail() for _ in range(100))
    assert rng.random() == random.Random(1).random()


def test_rate_one_always_fails() -> None:
    assert all(Faults(error_rate=1.0).should_fail() for _ in range(100))


@pytest.mark.parametrize(("latency", "rate"), [(-0.1, 0.0), (0.0, 1.5), (0.0, -0.1), (float("nan"), 0.0)])
def test_out_of_range_settings_are_refused(latency: float, rate: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        Faults(latency_s=latency, error_rate=rate)


async def test_delay_sleeps_the_configured_latency() -> None:
    start = time.monotonic()
    await Faults(latency_s=0.05).delay()
    assert time.monotonic() - start >= 0.045
