"""The test-set file round-trips, and its rows become well-formed OIP bodies."""

from __future__ import annotations

from pathlib import Path

from modelserver.testset import TestSet, infer_body, read_test_set, write_test_set


def test_round_trip(tmp_path: Path) -> None:
    ts = TestSet(x=[[1] * 64, [16] * 64], y=[3, 7])
    write_test_set(tmp_path / "t.json", ts, {"test_rows": 2})
    assert read_test_set(tmp_path / "t.json") == ts


def test_infer_body_is_flat_fp32_with_optional_id() -> None:
    body = infer_body([[0] * 64, [1] * 64], request_id="r1")
    assert body["id"] == "r1"
    (tensor,) = body["inputs"]
    assert (tensor["name"], tensor["shape"], tensor["datatype"]) == ("input", [2, 64], "FP32")
    assert tensor["data"] == [0] * 64 + [1] * 64
    assert "id" not in infer_body([[0] * 64])
