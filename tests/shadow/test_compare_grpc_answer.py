"""ModelInferResponse answers (the gRPC port's) read by the REST comparators: raw little-endian tensors
(BYTES length-prefixed) and typed contents alike, malformed messages not compared, ids ignored."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from oipgrpc import messages as m
from shadow.compare.answer import Answer
from shadow.compare.base import comparator
from shadow.compare.grpc_answer import GrpcAnswers, rest_answer

top1 = GrpcAnswers(comparator("oip-top1"))
numeric = GrpcAnswers(comparator("oip-numeric", atol=1e-6, rtol=0.0))
exact = GrpcAnswers(comparator("json-exact"))


def response(*outputs: tuple[str, str, np.ndarray[Any, Any]], typed: bool = False, rid: str = "r") -> bytes:
    """A ModelInferResponse of (name, datatype, values): raw_output_contents, or typed `contents`."""
    reply = m.ModelInferResponse(model_name="digits", model_version="1", id=rid)
    for name, datatype, values in outputs:
        tensor = reply.outputs.add(name=name, datatype=datatype, shape=list(values.shape))
        if typed:
            field = {"FP32": "fp32_contents", "INT64": "int64_contents", "BOOL": "bool_contents"}
            if datatype == "BYTES":
                tensor.contents.bytes_contents.extend(values.ravel().tolist())
            else:
                getattr(tensor.contents, field[datatype]).extend(values.ravel().tolist())
        elif datatype == "BYTES":
            items = values.ravel().tolist()
            reply.raw_output_contents.append(b"".join(len(b).to_bytes(4, "little") + b for b in items))
        else:
            reply.raw_output_contents.append(np.ascontiguousarray(values).tobytes())
    out: bytes = reply.SerializeToString()
    return out


def scores(rows: list[list[float]], typed: bool = False, rid: str = "r") -> bytes:
    return response(("probabilities", "FP32", np.asarray(rows, dtype="<f4")), typed=typed, rid=rid)


def labels(values: list[Any], datatype: str = "INT64", typed: bool = False) -> bytes:
    dtype: Any = {"INT64": "<i8", "BYTES": object, "BOOL": "?"}[datatype]
    return response(("predict", datatype, np.asarray(values, dtype=dtype).reshape(-1, 1)), typed=typed)


@pytest.mark.parametrize("typed", [False, True])
def test_scores_compare_by_top_class_per_row(typed: bool) -> None:
    primary = scores([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], typed)
    shadow = scores([[0.2, 0.8], [0.4, 0.6], [0.3, 0.7]], not typed)  # raw against typed, both ways
    result = top1(primary, shadow)
    assert (result.agree, result.rows, result.rows_agree) == (False, 3, 2)
    assert result.max_abs_diff == pytest.approx(0.4)


def test_numeric_reads_raw_fp32_exactly() -> None:
    rows = [[0.125, 0.875], [1e-7, 1.0]]
    assert numeric(scores(rows), scores(rows, typed=True)).agree is True
    result = numeric(scores(rows), scores([[0.125, 0.875], [2e-6, 1.0]]))
    assert (result.agree, result.exceed, result.rows_agree) == (False, True, 1)


@pytest.mark.parametrize("typed", [False, True])
def test_label_outputs_compare_by_value(typed: bool) -> None:
    result = top1(labels([3, 1, 4, 1, 5], typed=typed), labels([3, 1, 4, 2, 5], typed=typed))
    assert (result.agree, result.rows, result.rows_agree) == (False, 5, 4)


@pytest.mark.parametrize("typed", [False, True])
def test_bytes_labels_are_length_prefixed(typed: bool) -> None:
    primary = labels([b"cat", b"dog", b""], "BYTES", typed)
    shadow = labels([b"cat", b"cow", b""], "BYTES", not typed)
    result = top1(primary, shadow)
    assert (result.rows, result.rows_agree) == (3, 2)


def test_bool_labels() -> None:
    result = top1(labels([True, False], "BOOL", typed=True), labels([True, True], "BOOL"))
    assert (result.rows, result.rows_agree) == (2, 1)


def test_json_exact_ignores_the_response_id_but_not_the_tensors() -> None:
    rows = [[0.1, 0.9]]
    assert exact(scores(rows, rid="a"), scores(rows, rid="b")).agree is True
    assert exact(scores(rows), scores([[0.1, 0.8]])).agree is False


def test_the_rest_form_has_the_binary_extension() -> None:
    body = scores([[0.5, 0.25]])
    rest = rest_answer(Answer(body), "primary")
    length = int(rest.headers["inference-header-content-length"])
    assert rest.body[length:] == np.asarray([0.5, 0.25], dtype="<f4").tobytes()
    assert b'"binary_data_size":8' in rest.body[:length]


def bad_raw_count() -> bytes:
    reply = m.ModelInferResponse()
    reply.outputs.add(name="a", datatype="FP32", shape=[1])
    reply.outputs.add(name="b", datatype="FP32", shape=[1])
    reply.raw_output_contents.append(b"\0\0\0\0")
    out: bytes = reply.SerializeToString()
    return out


def typed_without_field(datatype: str, ints: list[int]) -> bytes:
    reply = m.ModelInferResponse()
    tensor = reply.outputs.add(name="a", datatype=datatype, shape=[len(ints)])
    tensor.contents.int_contents.extend(ints)
    out: bytes = reply.SerializeToString()
    return out


@pytest.mark.parametrize(
    ("shadow", "detail"),
    [
        (b"\xff\xff\xff", "shadow answer is not a ModelInferResponse"),
        (bad_raw_count(), "shadow answer has 1 raw_output_contents for 2 outputs"),
        (typed_without_field("FP16", [1]), "datatype 'FP16' without raw_output_contents"),
        (typed_without_field("INT8", [300]), "int_contents values out of range for INT8"),
        (scores([[0.1, 0.9, 0.0]]), "output shapes differ"),
        (labels([1]), "output 'probabilities' missing from shadow answer"),
    ],
)
def test_malformed_answers_are_not_compared(shadow: bytes, detail: str) -> None:
    result = top1(scores([[0.1, 0.9]]), shadow)
    assert result.agree is None
    assert result.detail is not None
    assert detail in result.detail


def test_typed_contents_may_not_unpack_past_their_bound() -> None:
    body = labels(list(range(100)), typed=True)  # ~100 bytes of varints, 800 bytes unpacked
    result = top1(Answer(body, max_bytes=50), Answer(body, max_bytes=50))
    assert result.agree is None
    assert "unpack to more than" in str(result.detail)


def test_the_comparator_can_be_sent_to_a_compare_worker() -> None:
    again = pickle.loads(pickle.dumps(top1))
    assert again(scores([[0.1, 0.9]]), scores([[0.2, 0.8]])).agree is True
