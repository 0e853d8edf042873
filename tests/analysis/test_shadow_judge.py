"""The shadow verdict: agreement OK / FAIL, calibration at the requirement, errors, floor, latency, JSON."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.shadow_judge import ShadowJudge
from experiments.model import AnalysisSpec, CanaryStrategy, Experiment, ShadowSpec, UnitKey, Variant
from experiments.outcome import OutcomeRecord
from tests.analysis.calib import bound

ALPHA = 0.05


def experiment(shadows: tuple[str, ...] = ("int8",), agreement_min: float | None = 0.99) -> Experiment:
    return Experiment(
        name="exp",
        source="exp.yaml",
        path_prefix="/",
        variants=(
            Variant("v1", "stable", "http://a"),
            Variant("v2", "candidate", "http://b"),
            *(Variant(s, "shadow", f"http://{s}") for s in shadows),
        ),
        unit=UnitKey("request"),
        salt="s",
        strategy=CanaryStrategy((10.0, 100.0)),
        shadow=ShadowSpec(compare="oip-top1", agreement_min=agreement_min),
        analysis=AnalysisSpec(alpha=ALPHA),
    )


def entry(variant: str = "int8", agree: bool | None = True, **kw: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"variant": variant, "status": 200, "error": None, "latency_ms": 12.0}
    if agree is not None:
        e |= {"agree": agree, "rows": 1, "rows_agree": int(agree)}
    return e | kw


def record(shadows: list[dict[str, Any]], status: int = 200, upstream_ms: float = 10.0) -> OutcomeRecord:
    return OutcomeRecord(
        "r", 0.0, "exp", "v1", 0.9, status, None, upstream_ms + 1.0, upstream_ms, None, shadows
    )


# The judge only reads records, so the agreement streams reuse two of them (fast enough for calibration).
AGREE, DISAGREE = record([entry(agree=True)]), record([entry(agree=False)])


def pairs_to_decision(judge: ShadowJudge, bits: np.ndarray, every: int = 100) -> tuple[str, int]:
    """Feed agreement bits in looks of `every`; the first decision and the pairs it took."""
    for start in range(0, bits.size, every):
        judge.observe([AGREE if b else DISAGREE for b in bits[start : start + every]])
        verdict = judge.verdicts()["int8"]["verdict"]
        if verdict != "NOT_ENOUGH_DATA":
            return verdict, start + every
    return "NOT_ENOUGH_DATA", bits.size


@pytest.mark.parametrize(("truth", "expected"), [(0.995, "OK"), (0.98, "FAIL")])
def test_agreement_decides_within_10k_pairs(truth: float, expected: str) -> None:
    rng = np.random.default_rng(11)
    for _ in range(5):
        verdict, n = pairs_to_decision(ShadowJudge(experiment()), rng.random(10_000) < truth)
        assert (verdict, n <= 10_000) == (expected, True)


def test_at_the_requirement_wrong_decisions_are_rare() -> None:
    """True agreement exactly 0.99, a look every 250 pairs up to 5k: any OK or FAIL is wrong."""
    rng = np.random.default_rng(12)
    runs = 200
    wrong = sum(
        pairs_to_decision(ShadowJudge(experiment()), rng.random(5000) < 0.99, 250)[0] != "NOT_ENOUGH_DATA"
        for _ in range(runs)
    )
    assert wrong / runs <= bound(ALPHA, runs)


SHADOW_ENTRIES = st.builds(
    entry,
    variant=st.sampled_from(["int8", "other"]),
    agree=st.sampled_from([True, False, None]),
    status=st.sampled_from([200, 200, 503, 0]),
    error=st.sampled_from([None, None, "timeout", "dropped:queue_full"]),
    latency_ms=st.floats(0.0, 1e5),
    exceed=st.sampled_from([True, False, None]),
)
RECORDS = st.builds(
    record,
    shadows=st.lists(SHADOW_ENTRIES, max_size=2),
    status=st.sampled_from([200, 200, 500]),
    upstream_ms=st.floats(0.0, 1e5),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(RECORDS, max_size=40), st.lists(st.integers(0, 40), max_size=4))
def test_batching_does_not_change_verdicts(records: list[OutcomeRecord], cuts: list[int]) -> None:
    whole, parts = ShadowJudge(experiment()), ShadowJudge(experiment())
    whole.observe(records)
    bounds = [0, *sorted(cuts), len(records)]
    for lo, hi in itertools.pairwise(bounds):
        parts.observe(records[lo:hi])
    assert whole.verdicts() == parts.verdicts()
    json.dumps(parts.verdicts(), allow_nan=False)


def test_nothing_paired_is_not_enough_data_and_json_clean() -> None:
    judge = ShadowJudge(experiment(agreement_min=None))
    judge.observe([record([]), record([entry(agree=None)])])
    (result,) = judge.verdicts().values()
    assert (result["verdict"], result["pairs"], result["agreement"]["n"]) == ("NOT_ENOUGH_DATA", 1, 0)
    assert result["agreement"]["requirement"] == 0.99
    assert result["latency_ratio"]["ci_low"] is None
    assert "exceedance" not in result
    json.dumps(judge.verdicts(), allow_nan=False)
    orjson.dumps(judge.verdicts())


def test_errored_shadows_are_counted_and_a_failing_shadow_fails() -> None:
    rng = np.random.default_rng(13)
    judge = ShadowJudge(experiment())
    timeout = entry(agree=None, status=0, error="timeout")
    dropped = entry(agree=None, status=0, error="dropped:queue_full")
    judge.observe([AGREE] * 2000 + [record([dropped])] * 500 + [record([entry(agree=None)], status=503)] * 20)
    result = judge.verdicts()["int8"]
    assert result["verdict"] == "OK"
    assert result["errors"] == {"dropped:queue_full": 500}
    assert result["error_rate"] == 0.0  # drops are outrider's, not the shadow's
    judge.observe([record([timeout]) if u < 0.1 else AGREE for u in rng.random(3000)])
    result = judge.verdicts()["int8"]
    assert result["verdict"] == "FAIL"
    assert any("error rate" in r for r in result["reasons"])
    assert result["errors"]["timeout"] == pytest.approx(result["error_rate"] * 5000)
    assert result["errors"]["timeout"] > 0


def floor_records(rng: np.random.Generator, n: int, floor: float, candidate: float) -> list[OutcomeRecord]:
    both = rng.random((n, 2)) < [floor, candidate]
    return [record([entry("copy", bool(f)), entry("int8", bool(c))]) for f, c in both]


def test_noisy_model_as_good_as_its_floor_is_ok() -> None:
    """Floor and candidate agree 0.98 with the primary (a noisy model); requirement 0.99."""
    records = floor_records(np.random.default_rng(14), 40_000, 0.98, 0.98)
    absolute, relative = (
        ShadowJudge(experiment(("copy", "int8"))),
        ShadowJudge(experiment(("copy", "int8")), floor="copy"),
    )
    absolute.observe(records)
    relative.observe(records)
    assert absolute.verdicts()["int8"]["verdict"] == "FAIL"
    result = relative.verdicts()
    assert list(result) == ["int8"]
    assert result["int8"]["verdict"] == "OK"
    assert result["int8"]["agreement"]["floor"]["tolerance"] == pytest.approx(0.01)


def test_candidate_much_worse_than_floor_fails() -> None:
    judge = ShadowJudge(experiment(("copy", "int8")), floor="copy")
    judge.observe(floor_records(np.random.default_rng(15), 3000, 0.995, 0.95))
    assert judge.verdicts()["int8"]["verdict"] == "FAIL"


def test_floor_must_be_a_shadow_variant() -> None:
    with pytest.raises(ValueError, match="floor"):
        ShadowJudge(experiment(), floor="v1")


def test_latency_ratio_and_exceedance_are_reported_without_changing_the_verdict() -> None:
    rng = np.random.default_rng(16)
    primary = np.exp(rng.normal(np.log(20.0), 0.3, 3000))
    shadow = primary * 1.2 * np.exp(rng.normal(0.0, 0.2, 3000))
    judge = ShadowJudge(experiment())
    judge.observe(
        [
            record([entry(latency_ms=s, exceed=False)], upstream_ms=p)
            for p, s in zip(primary, shadow, strict=True)
        ]
    )
    result = judge.verdicts()["int8"]
    assert result["verdict"] == "OK"
    lat = result["latency_ratio"]
    assert lat["ci_low"] < 1.2 < lat["ci_high"]
    assert lat["estimate"] == pytest.approx(1.2, rel=0.02)
    assert lat["log_e_slower"] >= np.log(1 / ALPHA)
    assert result["exceedance"]["rate"] == 0.0
    assert result["exceedance"]["n"] == 3000
    orjson.dumps(result)


def answered_by(primary: str, shadows: list[dict[str, Any]]) -> OutcomeRecord:
    rec = record(shadows)
    rec.variant = primary
    return rec


def test_agreement_is_given_per_primary_and_the_verdict_is_against_stable() -> None:
    """During a canary the shadow agrees with stable on every pair and with the candidate on half: the
    verdict is stable's OK, and the candidate's 0.5 is reported beside it, never blended into it."""
    judge = ShadowJudge(experiment())
    rng = np.random.default_rng(17)
    records = [answered_by("v1", [entry(agree=True)]) for _ in range(3000)]
    records += [answered_by("v2", [entry(agree=bool(b))]) for b in rng.random(1000) < 0.5]
    random.Random(3).shuffle(records)
    judge.observe(records)
    result = judge.verdicts()["int8"]
    assert (result["verdict"], result["primary"], result["pairs"]) == ("OK", "v1", 3000)
    assert result["agreement"]["estimate"] == 1.0
    assert result["agreement"]["n"] == 3000
    assert "with v1 (stable)" in result["reasons"][0]
    by = result["by_primary"]
    assert list(by) == ["v1", "v2"]
    assert by["v1"]["role"] == "stable"
    assert by["v1"]["agreement"]["estimate"] == 1.0
    assert by["v1"]["agreement"]["ci_low"] == result["agreement"]["ci_low"]
    candidate = by["v2"]
    assert (candidate["role"], candidate["pairs"], candidate["agreement"]["n"]) == ("candidate", 1000, 1000)
    agreed = sum(bool(e["agree"]) for r in records if r.variant == "v2" for e in r.shadows)
    assert candidate["agreement"]["estimate"] == agreed / 1000
    assert candidate["agreement"]["ci_low"] < 0.5 < candidate["agreement"]["ci_high"]
    orjson.dumps(result)


def test_only_candidate_pairs_leave_the_verdict_undecided() -> None:
    judge = ShadowJudge(experiment())
    judge.observe([answered_by("v2", [entry(agree=False)]) for _ in range(500)])
    result = judge.verdicts()["int8"]
    assert (result["verdict"], result["pairs"], result["agreement"]["n"]) == ("NOT_ENOUGH_DATA", 0, 0)
    assert result["by_primary"]["v2"]["agreement"]["estimate"] == 0.0
    assert result["reasons"] == ["no compared pairs with v1 (stable) yet"]


def test_the_floor_is_also_taken_against_stable() -> None:
    judge = ShadowJudge(experiment(("copy", "int8")), floor="copy")
    rng = np.random.default_rng(18)
    stable = floor_records(rng, 3000, 0.995, 0.95)
    # The candidate's pairs would make the floor look as bad as int8: they must not count.
    candidate = [answered_by("v2", [entry("copy", False), entry("int8", True)]) for _ in range(3000)]
    judge.observe(stable + candidate)
    result = judge.verdicts()["int8"]
    assert result["verdict"] == "FAIL"
    assert result["agreement"]["floor"]["n"] == 3000


def test_requests_not_mirrored_are_counted_as_skipped() -> None:
    judge = ShadowJudge(experiment())
    too_large = entry(
        agree=None, status=0, error="dropped:body_too_large", latency_ms=0.0, skipped="too_large"
    )
    judge.observe([AGREE] * 10 + [record([too_large])] * 3 + [answered_by("v2", [too_large])] * 2)
    result = judge.verdicts()["int8"]
    assert result["skipped"] == {"too_large": 5}
    assert result["errors"] == {"dropped:body_too_large": 3}
    assert result["error_rate"] == 0.0  # outrider did not send them: not the shadow's errors
    assert judge.verdicts()["int8"]["by_primary"]["v2"]["pairs"] == 2
