"""OnnxModel: what it tells about a model file and how it answers a raw infer body."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import orjson
import pytest
from onnx import TensorProto, helper

from modelserver.oip import OipError
from modelserver.runtime import ModelLoadError, OnnxModel
from modelserver.testset import infer_body, read_test_set


@pytest.fixture(scope="module")
def digits(models_dir: Path) -> OnnxModel:
    return OnnxModel.load(models_dir / "digits.onnx", "digits")


def test_metadata_describes_the_signature_with_a_dynamic_batch(digits: OnnxModel) -> None:
    assert digits.metadata() == {
        "name": "digits",
        "versions": ["1"],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}],
        "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}],
    }


def test_infer_answers_a_raw_body_with_probabilities(digits: OnnxModel, models_dir: Path) -> None:
    ts = read_test_set(models_dir / "test_set.json")
    reply = orjson.loads(digits.infer(orjson.dumps(infer_body(ts.x[:5], request_id="q"))))
    (out,) = reply["outputs"]
    assert (reply["id"], out["name"], out["shape"], out["datatype"]) == (
        "q",
        "probabilities",
        [5, 10],
        "FP32",
    )
    probs = np.array(out["data"]).reshape(5, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert list(probs.argmax(axis=1)) == ts.y[:5]


def test_infer_rejects_a_bad_body(digits: OnnxModel) -> None:
    with pytest.raises(OipError, match="not valid JSON"):
        digits.infer(b"{")


def test_a_missing_file_cannot_be_loaded(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model file at"):
        OnnxModel.load(tmp_path / "absent.onnx", "absent")


def test_a_file_that_is_not_onnx_cannot_be_loaded(tmp_path: Path) -> None:
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError, match="cannot load"):
        OnnxModel.load(tmp_path / "junk.onnx", "junk")


def test_a_model_with_an_unsupported_tensor_type_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "u8",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "u8.onnx")
    with pytest.raises(ModelLoadError, match=r"tensor 'x' has type tensor\(uint8\)"):
        OnnxModel.load(tmp_path / "u8.onnx", "u8")
