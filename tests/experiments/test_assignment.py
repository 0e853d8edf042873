"""Sticky assignment: uniform buckets, monotone ranges, exact probabilities."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from experiments.assignment import BUCKETS, TrafficTable, bucket_of, unit_hash
from experiments.model import ABStrategy, CanaryStrategy, Experiment, UnitKey, Variant


def canary(*variants: Variant) -> Experiment:
    return Experiment(
        name="e",
        source="t",
        path_prefix="/v2",
        variants=variants,
        unit=UnitKey("header", "x-user-id"),
        salt="salt",
        strategy=CanaryStrategy((10.0, 25.0)),
    )


STABLE = Variant("stable", "stable", "http://127.0.0.1:1")
CAND = Variant("candidate", "candidate", "http://127.0.0.1:2")
SHADOW = Variant("int8", "shadow", "http://127.0.0.1:3")


def test_bucket_is_deterministic_and_salted() -> None:
    assert bucket_of("a", "user-1") == bucket_of("a", "user-1")
    moved = sum(bucket_of("a", f"u{i}") != bucket_of("b", f"u{i}") for i in range(1000))
    assert moved > 990  # a new salt reshuffles almost everyone


def test_unit_hash_hides_the_key_and_ignores_the_salt() -> None:
    assert unit_hash("alice") != "alice"
    assert len(unit_hash("alice")) == 16
    assert unit_hash("alice") == unit_hash("alice")


def test_buckets_are_uniform() -> None:
    counts = [0] * 10
    for i in range(50_000):
        counts[bucket_of("s", f"user-{i}") * 10 // BUCKETS] += 1
    expected = 5_000
    chi2 = sum((c - expected) ** 2 / expected for c in counts)
    assert chi2 < 27.9  # χ²(9) 0.999 quantile


def test_table_excludes_shadows_and_puts_stable_last() -> None:
    table = TrafficTable.build(canary(STABLE, CAND, SHADOW), {"stable": 90, "candidate": 10})
    assert [v.name for v in table.variants] == ["candidate", "stable"]
    assert table.bounds == (1000, BUCKETS)
    assert table.pick(0) == (CAND, 0.1)
    assert table.pick(999) == (CAND, 0.1)
    assert table.pick(1000) == (STABLE, 0.9)
    assert table.pick(BUCKETS - 1) == (STABLE, 0.9)


@given(low=st.floats(0, 100), high=st.floats(0, 100), bucket=st.integers(0, BUCKETS - 1))
def test_raising_the_candidate_only_moves_stable_units(low: float, high: float, bucket: int) -> None:
    low, high = sorted((low, high))
    exp = canary(STABLE, CAND)
    before, _ = TrafficTable.build(exp, {"stable": 100 - low, "candidate": low}).pick(bucket)
    after, _ = TrafficTable.build(exp, {"stable": 100 - high, "candidate": high}).pick(bucket)
    assert not (before.name == "candidate" and after.name == "stable")


@given(st.lists(st.integers(0, 100), min_size=3, max_size=3).filter(lambda w: sum(w) > 0))
def test_probabilities_match_bucket_shares(raw: list[int]) -> None:
    total = sum(raw)
    names = ["a", "b", "c"]
    exp = Experiment(
        name="ab",
        source="t",
        path_prefix="/",
        variants=(
            Variant("a", "stable", "http://h:1"),
            Variant("b", "candidate", "http://h:2"),
            Variant("c", "candidate", "http://h:3"),
        ),
        unit=UnitKey("request"),
        salt="s",
        strategy=ABStrategy({n: 100 * w / total for n, w in zip(names, raw, strict=True)}),
    )
    table = TrafficTable.build(exp, dict(exp.strategy.weights))  # type: ignore[union-attr]
    assert table.bounds[-1] == BUCKETS
    assert abs(sum(table.probabilities) - 1.0) < 1e-9
    lower = 0
    for upper, p in zip(table.bounds, table.probabilities, strict=True):
        assert p == (upper - lower) / BUCKETS
        lower = upper
