"""The reference models: accuracies in their intended bands, one signature, a usable test set, idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
import pytest

from modelserver import build_models
from modelserver.testset import read_test_set


@pytest.fixture(scope="module")
def manifest(models_dir: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads((models_dir / "manifest.json").read_bytes())
    return doc


def entry(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in manifest["models"] if m["name"] == name]
    assert len(found) == 1
    return found[0]


def test_accuracies_fall_in_their_intended_bands(manifest: dict[str, Any]) -> None:
    assert entry(manifest, "digits")["accuracy"] >= 0.95
    assert entry(manifest, "digits-int8")["accuracy"] >= 0.95
    assert 0.75 <= entry(manifest, "digits-weak")["accuracy"] <= 0.88
    assert entry(manifest, "digits-int8")["agreement_with_fp32"] >= 0.98


def test_every_model_has_the_same_signature(models_dir: Path, manifest: dict[str, Any]) -> None:
    for m in manifest["models"]:
        session = ort.InferenceSession(str(models_dir / m["path"]), providers=["CPUExecutionProvider"])
        (inp,), (out,) = session.get_inputs(), session.get_outputs()
        assert (inp.name, inp.type, inp.shape[1]) == ("input", "tensor(float)", 64)
        assert (out.name, out.type, out.shape[1]) == ("probabilities", "tensor(float)", 10)
        assert isinstance(inp.shape[0], str), "batch dimension must be dynamic"


def test_int8_model_really_is_quantized(models_dir: Path) -> None:
    assert (models_dir / "digits-int8.onnx").stat().st_size < (models_dir / "digits.onnx").stat().st_size / 2


def test_test_set_holds_the_held_out_rows(models_dir: Path, manifest: dict[str, Any]) -> None:
    ts = read_test_set(models_dir / manifest["test_set"])
    assert len(ts.x) == len(ts.y) == manifest["split"]["test_rows"] == 540
    x = np.array(ts.x)
    assert x.shape == (540, 64)
    assert x.min() == 0
    assert x.max() == 16
    assert sorted(set(ts.y)) == list(range(10))


def test_a_second_build_leaves_fresh_outputs_alone(models_dir: Path, manifest: dict[str, Any]) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in models_dir.iterdir()}
    assert build_models.build(models_dir) == manifest
    assert {p.name: p.stat().st_mtime_ns for p in models_dir.iterdir()} == before


def test_outputs_older_than_the_code_are_stale(tmp_path: Path) -> None:
    for name in build_models.OUTPUT_FILES:
        (tmp_path / name).write_bytes(b"")
    assert build_models.is_up_to_date(tmp_path)
    (tmp_path / "manifest.json").unlink()
    assert not build_models.is_up_to_date(tmp_path)


def test_pooling_matrix_averages_2x2_blocks() -> None:
    image = np.arange(64, dtype=float)
    thumb = image @ build_models.pooling_matrix()
    assert thumb[0] == pytest.approx((0 + 1 + 8 + 9) / 4)
    assert thumb[15] == pytest.approx((54 + 55 + 62 + 63) / 4)
