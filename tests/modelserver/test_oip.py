"""Open Inference Protocol parsing and encoding, without sockets: good bodies and each class of bad body."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from modelserver.oip import (
    MAX_BATCH,
    OipError,
    TensorSpec,
    encode_infer_response,
    error_body,
    parse_infer_request,
)

INPUTS = (TensorSpec("input", "FP32", (-1, 64)),)
OUTPUTS = (TensorSpec("probabilities", "FP32", (-1, 10)), TensorSpec("logits", "FP32", (-1, 10)))
ROW = list(range(64))


def tensor(**overrides: Any) -> dict[str, Any]:
    """A valid one-row input tensor with `overrides` applied (None deletes a key)."""
    out: dict[str, Any] = {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ROW}
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not None}


def parse(doc: object, inputs: tuple[TensorSpec, ...] = INPUTS) -> Any:
    """Parse `doc` as a JSON body against the digits-like model."""
    return parse_infer_request(orjson.dumps(doc), inputs, OUTPUTS)


def test_flat_integer_data_becomes_float32_of_the_declared_shape() -> None:
    req = parse({"inputs": [tensor(shape=[2, 64], data=ROW + ROW)]})
    arr = req.inputs["input"]
    assert arr.dtype == np.float32
    assert arr.shape == (2, 64)
    assert arr[1, 63] == 63.0
    assert req.id is None
    assert req.outputs == ("probabilities", "logits")


def test_nested_data_is_accepted_when_it_matches_the_shape() -> None:
    req = parse({"inputs": [tensor(shape=[2, 64], data=[ROW, [v / 2 for v in ROW]])]})
    assert req.inputs["input"][1, 2] == pytest.approx(1.0)


def test_id_and_requested_outputs_are_kept_in_order() -> None:
    req = parse(
        {"id": "r-1", "inputs": [tensor()], "outputs": [{"name": "logits"}, {"name": "probabilities"}]}
    )
    assert req.id == "r-1"
    assert req.outputs == ("logits", "probabilities")


def test_an_empty_outputs_list_means_all_outputs() -> None:
    assert parse({"inputs": [tensor()], "outputs": []}).outputs == ("probabilities", "logits")


BAD_BODIES: list[tuple[object, str]] = [
    ([1], "request body must be a JSON object"),
    ({"inputs": []}, "'inputs' must be a non-empty list of tensors"),
    ({"inputs": {"name": "input"}}, "'inputs' must be a non-empty list of tensors"),
    ({"id": 5, "inputs": [tensor()]}, "'id' must be a string"),
    ({"inputs": [tensor(name=None)]}, "each entry of 'inputs' must be an object with a string 'name'"),
    ({"inputs": [tensor(name="pixels")]}, "unknown input 'pixels'; the model's inputs are: input"),
    ({"inputs": [tensor(), tensor()]}, "input 'input' is given more than once"),
    ({"inputs": [tensor(datatype="FP64")]}, "input 'input': datatype 'FP64' does not match the model's FP32"),
    ({"inputs": [tensor(datatype=None)]}, "input 'input': datatype missing does not match the model's FP32"),
    ({"inputs": [tensor(shape=[64])]}, "input 'input': shape [64] does not fit the model's [-1, 64]"),
    ({"inputs": [tensor(shape=[1, 63])]}, "input 'input': shape [1, 63] does not fit the model's [-1, 64]"),
    ({"inputs": [tensor(shape=[1, -64])]}, "input 'input': 'shape' must be a list of non-negative integers"),
    ({"inputs": [tensor(shape=[1.0, 64])]}, "input 'input': 'shape' must be a list of non-negative integers"),
    ({"inputs": [tensor(shape="1,64")]}, "input 'input': 'shape' must be a list of non-negative integers"),
    ({"inputs": [tensor(shape=[0, 64], data=[])]}, f"input 'input': batch size 0 is outside 1..{MAX_BATCH}"),
    (
        {"inputs": [tensor(shape=[MAX_BATCH + 1, 64])]},
        f"input 'input': batch size {MAX_BATCH + 1} is outside 1..{MAX_BATCH}",
    ),
    ({"inputs": [tensor(data=None)]}, "input 'input': 'data' must be a list of numbers (flat or nested)"),
    ({"inputs": [tensor(data="0,1,2")]}, "input 'input': 'data' must be a list of numbers (flat or nested)"),
    ({"inputs": [tensor(data=["1"] * 64)]}, "input 'input': 'data' must hold only numbers fit for FP32"),
    ({"inputs": [tensor(data=[True] * 64)]}, "input 'input': 'data' must hold only numbers fit for FP32"),
    ({"inputs": [tensor(data=[None] * 64)]}, "input 'input': 'data' must hold only numbers fit for FP32"),
    ({"inputs": [tensor(shape=[2, 64], data=[ROW, ROW[:3]])]}, "input 'input': nested 'data' is ragged"),
    (
        {"inputs": [tensor(shape=[2, 64], data=[ROW])]},
        "input 'input': nested 'data' has shape [1, 64], not the declared [2, 64]",
    ),
    ({"inputs": [tensor(data=ROW[:63])]}, "input 'input': shape [1, 64] needs 64 values, 'data' has 63"),
    ({"inputs": [tensor(shape=[2, 64])]}, "input 'input': shape [2, 64] needs 128 values, 'data' has 64"),
    ({"inputs": [tensor(data=[1e39, *ROW[1:]])]}, "input 'input': values out of range for FP32"),
    (
        {"inputs": [tensor(parameters={"binary_data_size": 256})]},
        "input 'input': binary tensor data is not supported; send 'data' as JSON",
    ),
    ({"inputs": [tensor()], "outputs": "probabilities"}, "'outputs' must be a list of objects with a 'name'"),
    ({"inputs": [tensor()], "outputs": [{"nam": "x"}]}, "'outputs' must be a list of objects with a 'name'"),
    (
        {"inputs": [tensor()], "outputs": [{"name": "classes"}]},
        "unknown output 'classes'; the model's outputs are: probabilities, logits",
    ),
    (
        {"inputs": [tensor()], "outputs": [{"name": "logits"}, {"name": "logits"}]},
        "output 'logits' is requested more than once",
    ),
]


@pytest.mark.parametrize(("doc", "message"), BAD_BODIES)
def test_bad_bodies_are_rejected_with_a_clear_message(doc: object, message: str) -> None:
    with pytest.raises(OipError) as info:
        parse(doc)
    assert info.value.message == message
    assert info.value.status == 400


def test_a_body_that_is_not_json_is_rejected() -> None:
    with pytest.raises(OipError, match=r"^request body is not valid JSON: ") as info:
        parse_infer_request(b"{inputs: nope", INPUTS, OUTPUTS)
    assert info.value.status == 400


def test_a_missing_input_is_named() -> None:
    two = (*INPUTS, TensorSpec("mask", "INT64", (-1, 64)))
    with pytest.raises(OipError, match=r"^missing input 'mask'$"):
        parse({"inputs": [tensor()]}, two)


def test_integer_inputs_refuse_fractions_and_out_of_range_values() -> None:
    ints = (TensorSpec("input", "INT32", (-1, 64)),)
    assert parse({"inputs": [tensor(datatype="INT32")]}, ints).inputs["input"].dtype == np.int32
    with pytest.raises(OipError, match="must hold only numbers fit for INT32"):
        parse({"inputs": [tensor(datatype="INT32", data=[0.5] * 64)]}, ints)
    with pytest.raises(OipError, match="values out of range for INT32"):
        parse({"inputs": [tensor(datatype="INT32", data=[2**40] * 64)]}, ints)


def test_the_reply_carries_flat_data_shape_datatype_and_id() -> None:
    probs = np.arange(20, dtype=np.float32).reshape(2, 10) / 20
    doc = orjson.loads(encode_infer_response("digits", "1", "r-9", [("probabilities", probs)]))
    assert doc == {
        "model_name": "digits",
        "model_version": "1",
        "id": "r-9",
        "outputs": [
            {
                "name": "probabilities",
                "shape": [2, 10],
                "datatype": "FP32",
                "data": pytest.approx(probs.ravel()),
            }
        ],
    }


def test_the_reply_leaves_out_an_absent_id() -> None:
    doc = orjson.loads(encode_infer_response("digits", "1", None, [("p", np.zeros((1, 10), np.float32))]))
    assert "id" not in doc


def test_error_body_is_the_oip_error_shape() -> None:
    assert orjson.loads(error_body("bad")) == {"error": "bad"}
