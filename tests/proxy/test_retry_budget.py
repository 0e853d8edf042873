"""`RetryBudget` with a fake clock: golden values, and hypothesis against a plain reference model."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.upstream.retry_budget import RetryBudget


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_twenty_failing_requests_earn_four_retries() -> None:
    budget = RetryBudget(0.2, 3, clock=FakeClock(5.0))
    granted = []
    for _ in range(20):
        budget.record_request()
        granted.append(budget.try_retry())
    # the minimum covers the first three; after that one retry per five requests (0.2 × 16 > 3 at request 16)
    assert [i + 1 for i, ok in enumerate(granted) if ok] == [1, 2, 3, 16]
    assert (budget.requests_in_window, budget.retries_in_window) == (20, 4)


def test_a_storm_is_capped_at_the_ratio() -> None:
    budget = RetryBudget(0.2, 3, clock=FakeClock())
    for _ in range(1000):
        budget.record_request()
    assert sum(budget.try_retry() for _ in range(1000)) == 200


def test_the_minimum_applies_without_traffic_and_the_window_slides() -> None:
    clock = FakeClock(100.0)
    budget = RetryBudget(0.2, 3, clock=clock)
    assert [budget.try_retry() for _ in range(4)] == [True, True, True, False]
    clock.now += 9.9
    assert not budget.try_retry()
    clock.now += 0.1  # the first slot leaves the window
    assert budget.retries_in_window == 0
    assert budget.try_retry()


def test_zero_ratio_and_zero_minimum_never_retry() -> None:
    budget = RetryBudget(0.0, 0, clock=FakeClock())
    budget.record_request()
    assert not budget.try_retry()


@pytest.mark.parametrize(
    "kw", [{"ratio": -0.1}, {"ratio": 1.5}, {"minimum": -1}, {"resolution_s": 0.0}, {"resolution_s": 11.0}]
)
def test_bad_parameters(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="retry budget"):
        RetryBudget(**kw)  # type: ignore[arg-type]


Event = tuple[float, bool]  # (seconds since the previous event, True = a retry attempt)


def reference(events: list[Event], ratio: float, minimum: int, window_s: float, res: float) -> list[bool]:
    """The rule read literally: count every request and granted retry whose slot is still in the window."""
    slots = math.ceil(window_s / res)
    now = 0.0
    history: list[tuple[int, bool]] = []
    decisions: list[bool] = []
    for gap, is_retry in events:
        now += gap
        slot = math.floor(now / res)
        live = [(s, r) for s, r in history if s > slot - slots]
        requests = sum(1 for _, r in live if not r)
        retries = sum(1 for _, r in live if r)
        if not is_retry:
            history.append((slot, False))
            continue
        ok = retries < max(minimum, ratio * requests)
        decisions.append(ok)
        if ok:
            history.append((slot, True))
    return decisions


events_strategy = st.lists(
    st.tuples(st.floats(0.0, 3.0, allow_nan=False), st.booleans()), min_size=1, max_size=300
)


@settings(max_examples=300, deadline=None)
@given(
    events=events_strategy,
    ratio=st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0]),
    minimum=st.integers(0, 5),
    window_s=st.sampled_from([1.0, 10.0]),
)
def test_matches_the_reference_model(
    events: list[Event], ratio: float, minimum: int, window_s: float
) -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio, minimum, window_s=window_s, clock=clock)
    decisions = []
    for gap, is_retry in events:
        clock.now += gap
        if is_retry:
            decisions.append(budget.try_retry())
        else:
            budget.record_request()
    assert decisions == reference(events, ratio, minimum, window_s, budget.resolution_s)


@settings(max_examples=200, deadline=None)
@given(events=events_strategy)
def test_retries_granted_in_any_window_stay_within_the_budget(events: list[Event]) -> None:
    """Whatever the traffic, when a retry is granted the window holds no more than the rule allows."""
    clock = FakeClock()
    budget = RetryBudget(0.2, 3, clock=clock)
    for gap, is_retry in events:
        clock.now += gap
        if not is_retry:
            budget.record_request()
        elif budget.try_retry():
            assert budget.retries_in_window <= max(3, math.ceil(0.2 * budget.requests_in_window))
