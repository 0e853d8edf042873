"""Hand-built ONNX graphs for dense classifiers: scale → (MatMul → Add → Relu)* → MatMul → Add → Softmax.

Built with `onnx.helper` rather than a converter so the repo needs no extra export dependency and the graph is
exactly what the README says it is.

Usage: model = dense_classifier([(w1, b1), (w2, b2)], input_scale=1 / 16, name="digits")
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
OPSET = 17
# IR 8 is read by every onnxruntime since 1.10; newer IR versions would lock out older runtimes for nothing.
IR_VERSION = 8
BATCH_DIM = "batch"

Layer = tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]]
"""(weights [in, out], bias [out]) of one dense layer."""


def _initializer(name: str, value: npt.ArrayLike) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name=name)


def dense_classifier(layers: Sequence[Layer], *, input_scale: float, name: str) -> onnx.ModelProto:
    """A classifier over `layers` (Relu between them) ending in Softmax; input FLOAT [batch, in], output
    FLOAT [batch, classes].

    The input is multiplied by `input_scale` inside the graph, so clients send raw feature values.
    """
    if not layers:
        raise ValueError("a classifier needs at least one layer")
    n_in = int(layers[0][0].shape[0])
    n_out = int(layers[-1][0].shape[1])
    inits = [_initializer("input_scale", np.float32(input_scale))]
    nodes = [helper.make_node("Mul", [INPUT_NAME, "input_scale"], ["scaled"], name="scale")]
    current = "scaled"
    for i, (weights, bias) in enumerate(layers):
        inits += [_initializer(f"w{i}", weights), _initializer(f"b{i}", bias)]
        nodes += [
            helper.make_node("MatMul", [current, f"w{i}"], [f"mm{i}"], name=f"matmul{i}"),
            helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}"], name=f"add{i}"),
        ]
        current = f"z{i}"
        if i < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"h{i}"], name=f"relu{i}"))
            current = f"h{i}"
    nodes.append(helper.make_node("Softmax", [current], [OUTPUT_NAME], axis=-1, name="softmax"))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, n_in])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, n_out])],
        initializer=inits,
    )
    model = helper.make_model(
        graph, producer_name="outrider.modelserver", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model
