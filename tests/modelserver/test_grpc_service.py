"""The model server's gRPC request checks (pure: messages in, arrays or OipError out) and its answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelserver import oip
from modelserver.grpc_service import infer_request, infer_response
from modelserver.runtime import OnnxModel
from oipgrpc import messages as m


@pytest.fixture(scope="module")
def model(models_dir: Path) -> OnnxModel:
    return OnnxModel.load(models_dir / "digits.onnx", "digits")


def request(rows: int, raw: bytes | None = None, fp32: list[float] | None = None) -> object:
    req = m.ModelInferRequest(model_name="digits", id="r1")
    tensor = req.inputs.add(name="input", datatype="FP32", shape=[rows, 64])
    if raw is not None:
        req.raw_input_contents.append(raw)
    if fp32 is not None:
        tensor.contents.fp32_contents.extend(fp32)
    return req


def test_raw_and_typed_inputs_give_the_same_arrays(model: OnnxModel) -> None:
    x = np.arange(128, dtype=np.float32).reshape(2, 64) / 128
    raw = infer_request(request(2, raw=x.astype("<f4").tobytes()), model)
    typed = infer_request(request(2, fp32=[float(v) for v in x.ravel()]), model)
    np.testing.assert_array_equal(raw.inputs["input"], x)
    np.testing.assert_array_equal(typed.inputs["input"], x)
    assert raw.outputs == ("probabilities",)


@pytest.mark.parametrize(
    ("req", "says"),
    [
        (request(2, raw=bytes(100)), "raw bytes do not fill"),
        (request(2, fp32=[0.0] * 10), "needs 128 values"),
        (request(0, raw=b""), "batch size"),
    ],
)
def test_requests_that_do_not_fit_are_refused(model: OnnxModel, req: object, says: str) -> None:
    with pytest.raises(oip.OipError, match=says):
        infer_request(req, model)


def test_unknown_inputs_and_outputs_are_refused(model: OnnxModel) -> None:
    req = request(1, raw=bytes(256))
    req.inputs[0].name = "pixels"  # type: ignore[attr-defined]
    with pytest.raises(oip.OipError, match="unknown input"):
        infer_request(req, model)
    req = request(1, raw=bytes(256))
    req.outputs.add(name="logits")  # type: ignore[attr-defined]
    with pytest.raises(oip.OipError, match="unknown output"):
        infer_request(req, model)


def test_answers_are_raw_little_endian_tensors(model: OnnxModel) -> None:
    out = np.linspace(0, 1, 20, dtype=np.float32).reshape(2, 10)
    reply = infer_response(model, "r1", [("probabilities", out)])
    assert (reply.model_name, reply.id, reply.outputs[0].datatype) == ("digits", "r1", "FP32")
    assert list(reply.outputs[0].shape) == [2, 10]
    back = np.frombuffer(reply.raw_output_contents[0], dtype="<f4").reshape(2, 10)
    np.testing.assert_array_equal(back, out)
