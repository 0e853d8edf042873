"""Hand-built ONNX graphs compute what numpy says a dense classifier computes."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from modelserver.onnx_graphs import INPUT_NAME, OUTPUT_NAME, dense_classifier


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def test_two_layer_graph_matches_numpy_for_any_batch_size() -> None:
    rng = np.random.default_rng(0)
    w0, b0, w1, b1 = rng.normal(size=(6, 5)), rng.normal(size=5), rng.normal(size=(5, 3)), rng.normal(size=3)
    model = dense_classifier([(w0, b0), (w1, b1)], input_scale=0.5, name="t")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for rows in (1, 7):
        x = rng.normal(size=(rows, 6)).astype(np.float32)
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
        want = softmax(np.maximum(x * 0.5 @ w0 + b0, 0) @ w1 + b1)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_signature_has_a_dynamic_batch_dimension() -> None:
    model = dense_classifier([(np.zeros((4, 2)), np.zeros(2))], input_scale=1.0, name="t")
    (inp,) = model.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert (inp.name, dims[0].dim_param, dims[1].dim_value) == (INPUT_NAME, "batch", 4)


def test_no_layers_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one layer"):
        dense_classifier([], input_scale=1.0, name="t")
