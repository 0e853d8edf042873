"""UnitTally: the worked stream, record-by-record reference, batching invariance, cap, switches, SRM."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.unit_sums import HT_A, HT_B, HT_C, HT_D, HT_U, HT_V, ArmSums
from analysis.unit_tail import thresholds
from analysis.unit_tally import UnitTally
from tests.analysis.unit_sim import sticky_stream, tally_of

STREAM = """u1 0 0 40 | u2 1 0 55 | u1 0 1 120 | u3 0 0 35 | u2 1 1 80 | u4 1 0 60 | u1 0 0 45 | u5 0 0 50 |
            u2 1 0 70 | u3 0 0 30 | u6 1 1 95 | u4 1 0 65 | u1 0 0 42 | u5 0 1 150 | u6 1 0 58 | u7 0 0 38"""
RECORDS = [r.split() for r in STREAM.replace("\n", " ").split("|")]
UNITS = [r[0] for r in RECORDS]
IN_B = np.array([r[1] == "1" for r in RECORDS])
ERROR = np.array([r[2] == "1" for r in RECORDS])
LATENCY = np.array([float(r[3]) for r in RECORDS])
GOLDEN_A = ArmSums(4, 9, 25, 2, 6, 2, 2.3375781203, 7.2568205120, 4.1674602347)
GOLDEN_B = ArmSums(3, 7, 17, 2, 5, 2, 3.6987506174, 8.9687179345, 4.7916377599)


def _feed(t: UnitTally, cuts: list[int], rho: float = 0.1) -> UnitTally:
    edges = [0, *sorted(cuts), len(RECORDS)]
    for lo, hi in itertools.pairwise(edges):
        t.add(UNITS[lo:hi], IN_B[lo:hi], np.full(hi - lo, rho), ERROR[lo:hi], LATENCY[lo:hi])
    return t


def _assert_sums(got: ArmSums, expected: ArmSums) -> None:
    for name in ArmSums.__slots__:
        assert getattr(got, name) == pytest.approx(getattr(expected, name), abs=1e-8), name


@pytest.mark.parametrize("cuts", [[], list(range(1, 16)), [3, 7, 8], [15], [1]])
def test_worked_stream_golden_sums_any_batching(cuts: list[int]) -> None:
    t = _feed(UnitTally(), cuts)
    assert t.kappa == pytest.approx(math.log(40.0), abs=1e-15)
    _assert_sums(t.arms[0], GOLDEN_A)
    _assert_sums(t.arms[1], GOLDEN_B)
    assert (t.units(0), t.units(1), t.records(0), t.records(1)) == (4, 3, 9, 7)
    assert t.effective_units(0) == pytest.approx(81 / 25)
    assert t.srm_counts == {0.1: (4, 3)}
    assert (t.switched, t.steps, t.capped) == (0, False, (0, 0))


# ---- a literal record-by-record implementation of the update rules, as the reference --------------------


def _reference(rows: list[tuple[Any, bool, float, bool, float]], cap: int) -> dict[str, Any]:
    per: dict[tuple[Any, int], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    sums = np.zeros((2, 9))
    seen: dict[Any, int] = defaultdict(int)
    ht: dict[Any, np.ndarray] = defaultdict(lambda: np.zeros(6))
    capped, kappa, kept = [0, 0], None, []
    for unit, b, rho, err, lat in rows:
        g = int(b)
        seen[unit] += 1
        if seen[unit] > cap:
            capped[g] += 1
            continue
        lat = max(lat, 1e-3)
        kappa = math.log(lat) if kappa is None else kappa
        e, y = float(err), math.log(lat) - kappa
        n, eps, eta = per[(unit, g)]
        s = sums[g]
        s[0] += n == 0
        s[1] += 1
        s[2] += 2 * n + 1
        s[3] += e
        s[4] += eps + e * (n + 1)
        s[5] += e * (2 * eps + 1)
        s[6] += y
        s[7] += eta + y * (n + 1)
        s[8] += y * (2 * eta + y)
        per[(unit, g)] = [n + 1, eps + e, eta + y]
        w = 1 / rho if b else 1 / (1 - rho)
        ht[unit] += np.array([w * e, w, 0, 0, w * y, 0]) if b else np.array([0, 0, w * e, w, 0, w * y])
        kept.append((unit, g, lat))
    q = np.array(list(ht.values()))
    return {"sums": sums, "capped": tuple(capped), "T": q.sum(0), "P": q.T @ q, "kept": kept, "per": per}


ROW = st.tuples(
    st.integers(0, 6),
    st.booleans(),
    st.sampled_from([0.1, 0.5]),
    st.booleans(),
    st.one_of(st.floats(1.0, 500.0), st.just(0.0), st.just(-3.0)),
)


def _tally(rows: list[tuple[Any, bool, float, bool, float]], cuts: list[int], cap: int) -> UnitTally:
    t = UnitTally(cap, 0.9, reference_records=5)
    edges = [0, *sorted(c % (len(rows) + 1) for c in cuts), len(rows)]
    for lo, hi in itertools.pairwise(edges):
        part = rows[lo:hi]
        t.add(
            np.array([r[0] for r in part], dtype=np.int64),
            np.array([r[1] for r in part], dtype=np.bool_),
            np.array([r[2] for r in part]),
            np.array([r[3] for r in part], dtype=np.bool_),
            np.array([r[4] for r in part]),
        )
        t.add_rewards([r[0] for r in part], [r[1] for r in part], [r[2] for r in part], [r[4] for r in part])
    return t


def _state(t: UnitTally) -> dict[str, Any]:
    tails = [t.tail(g) for g in (0, 1)]
    return {
        "exact": (t.capped, t.reward_capped, t.switched, t.srm_counts, t.steps, t.reward_steps, t.x_ref),
        "arms": np.array([[getattr(a, f) for f in ArmSums.__slots__] for a in (*t.arms, *t.reward_arms)]),
        "ht": np.concatenate([t.step_sums.T, t.step_sums.P.ravel(), t.reward_step_sums.P.ravel()]),
        "tail": None if tails[0] is None else np.concatenate([np.r_[x.X, x.Skn, x.Skk] for x in tails if x]),
    }


@settings(max_examples=60, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=40), st.lists(st.integers(0, 40), max_size=6), st.integers(1, 5))
def test_any_batching_gives_the_same_state(rows: list[Any], cuts: list[int], cap: int) -> None:
    one, parts, single = (
        _tally(rows, [], cap),
        _tally(rows, cuts, cap),
        _tally(rows, list(range(len(rows))), cap),
    )
    a, b, c = _state(one), _state(parts), _state(single)
    assert a["exact"] == b["exact"] == c["exact"]
    for key in ("arms", "ht", "tail"):
        if a[key] is None:
            assert b[key] is None
            assert c[key] is None
        else:
            assert np.allclose(a[key], b[key], rtol=1e-9, atol=1e-9)
            assert np.allclose(a[key], c[key], rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(ROW, min_size=1, max_size=40), st.lists(st.integers(0, 40), max_size=6), st.integers(1, 5))
def test_matches_the_record_by_record_update_rules(rows: list[Any], cuts: list[int], cap: int) -> None:
    t, ref = _tally(rows, cuts, cap), _reference(rows, cap)
    got = np.array([[getattr(a, f) for f in ArmSums.__slots__] for a in t.arms])
    assert np.allclose(got, ref["sums"], rtol=1e-9, atol=1e-9)
    assert t.capped == ref["capped"]
    assert np.allclose(t.step_sums.T, ref["T"], rtol=1e-9, atol=1e-9)
    assert np.allclose(t.step_sums.P, ref["P"], rtol=1e-9, atol=1e-9)
    kept = ref["kept"]
    if len(kept) < 5:
        assert t.x_ref is None
        assert t.tail(0) is None
        return
    assert t.x_ref == np.quantile([k[2] for k in kept[:5]], 0.9)
    assert t.x_ref is not None
    x = thresholds(t.x_ref)
    for g in (0, 1):
        k: dict[Any, np.ndarray] = defaultdict(lambda: np.zeros(51))
        for unit, arm, lat in kept:
            if arm == g:
                k[unit] += lat > x
        tail = t.tail(g)
        assert tail is not None
        n = np.array([ref["per"][(u, g)][0] for u in k])
        kk = np.array(list(k.values())).reshape(-1, 51)
        assert np.allclose(tail.X, kk.sum(0))
        assert np.allclose(tail.Skk, (kk**2).sum(0))
        assert np.allclose(tail.Skn, (kk * n[:, None]).sum(0))


def test_a_units_records_beyond_the_cap_are_not_analysed() -> None:
    t = UnitTally(unit_cap=1000)
    lat = np.full(1001, 50.0)
    t.add(["heavy"] * 600, np.ones(600, bool), np.full(600, 0.1), np.zeros(600, bool), lat[:600])
    t.add(["heavy"] * 401, np.ones(401, bool), np.full(401, 0.1), np.ones(401, bool), lat[:401])
    assert t.records(1) == 1000
    assert t.capped == (0, 1)
    assert t.arms[1].E == 400  # the 1001st record (an error) was cut
    t.add(["light", "heavy"], np.array([False, True]), np.full(2, 0.1), np.zeros(2, bool), np.full(2, 9.0))
    assert (t.records(0), t.records(1), t.capped) == (1, 1000, (0, 2))


def test_cap_counts_in_arrival_order_within_a_batch() -> None:
    t = UnitTally(unit_cap=2)
    t.add(
        ["a", "b", "a", "a", "b"],
        np.array([0, 1, 0, 0, 1], bool),
        np.full(5, 0.5),
        np.array([0, 0, 0, 1, 0], bool),
        np.full(5, 10.0),
    )
    assert (t.records(0), t.records(1), t.capped, t.arms[0].E) == (2, 2, (1, 0), 0)  # fmt: skip


def test_unit_changing_arm_at_an_unchanged_split_is_counted_once() -> None:
    t = UnitTally()
    rows = [("u", False, 0.1), ("v", True, 0.1), ("u", True, 0.1), ("u", False, 0.1), ("u", True, 0.1)]
    for u, b, rho in rows:
        t.add([u], np.array([b]), np.array([rho]), np.zeros(1, bool), np.ones(1))
    assert t.switched == 1
    assert t.srm_counts == {0.1: (1, 1)}  # units at their first record only


def test_moving_to_b_when_the_split_grows_is_not_a_switch() -> None:
    t = UnitTally()
    t.add(["u", "w"], np.array([False, True]), np.array([0.1, 0.1]), np.zeros(2, bool), np.ones(2))
    t.add(["u", "x"], np.array([True, False]), np.array([0.5, 0.5]), np.zeros(2, bool), np.ones(2))
    assert t.switched == 0
    assert t.steps
    assert t.srm_counts == {0.1: (1, 1), 0.5: (1, 0)}
    assert (t.units(0), t.units(1)) == (2, 2)
    t.add(["u"], np.array([False]), np.array([0.5]), np.zeros(1, bool), np.ones(1))  # back to A at 0.5
    assert t.switched == 1


def test_rows_outside_the_open_split_and_bad_latencies() -> None:
    t = UnitTally()
    t.add(
        [1, 2, 3, 4],
        np.array([True, False, True, False]),
        np.array([1.0, 0.0, 0.3, 1e-12]),
        np.zeros(4, bool),
        np.array([5.0, 5.0, -2.0, 5.0]),
    )
    assert (t.records(0), t.records(1)) == (0, 1)
    assert t.kappa == pytest.approx(math.log(1e-3))  # latency ≤ 0 clamps to 1e-3 ms


def test_reference_quantile_is_frozen_from_the_first_analysed_records() -> None:
    s = sticky_stream(np.random.default_rng(4), units=1500)
    t = tally_of(s, batch=333)
    assert t.x_ref == pytest.approx(float(np.quantile(s.latency_ms[:1000], 0.99)), rel=1e-15)
    assert tally_of(s, batch=333, quantile=None).x_ref is None


def test_growth_past_the_initial_capacity_and_string_units() -> None:
    s = sticky_stream(np.random.default_rng(5), units=5000)
    keys = np.array([f"user-{u}" for u in s.unit], dtype=object)
    t = UnitTally()
    for lo in range(0, s.size, 977):
        t.add(keys[lo : lo + 977], *s.rows(lo, lo + 977)[1:])
    ref = tally_of(s)  # one large batch (the replay path)
    assert t.units(0) + t.units(1) == len(np.unique(s.unit)) == ref.units(0) + ref.units(1)
    got, want = _state(t), _state(ref)
    assert got["exact"][2:] == want["exact"][2:]  # no rewards were fed to `t`
    assert np.allclose(got["arms"][:2], want["arms"][:2], rtol=1e-9)
    assert np.allclose(got["tail"], want["tail"], rtol=1e-9)
    assert np.allclose(t.step_sums.P, ref.step_sums.P, rtol=1e-9)


def test_step_sums_hold_the_horvitz_thompson_unit_totals() -> None:
    s = sticky_stream(np.random.default_rng(6), units=300, pi=(0.1, 0.3, 0.6))
    t = tally_of(s, batch=50)
    w = np.where(s.in_b, 1 / s.rho, 1 / (1 - s.rho))
    y = np.log(s.latency_ms) - math.log(s.latency_ms[0])
    q = np.zeros((300, 6))
    columns = [
        (HT_A, 1, s.error),
        (HT_B, 1, 1.0),
        (HT_U, 1, y),
        (HT_C, 0, s.error),
        (HT_D, 0, 1.0),
        (HT_V, 0, y),
    ]
    for col, on_b, v in columns:
        np.add.at(q[:, col], s.unit, np.where(s.in_b == on_b, w * v, 0.0))
    st_ = t.step_sums
    assert np.allclose(st_.P, q.T @ q, rtol=1e-10)
    assert np.allclose(st_.T, q.sum(0), rtol=1e-10)
    assert pytest.approx(float((w[s.in_b] ** 2).sum())) == st_.W_B
    assert st_.M == 300
    assert t.steps
    assert t.switched == 0
