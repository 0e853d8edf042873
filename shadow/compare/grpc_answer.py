"""Answers of the OIP gRPC service (`ModelInferResponse`) read by the REST comparators.

Usage:
    compare = GrpcAnswers(comparator("oip-top1"))  # what the gRPC port's mirror compares with
    compare(Answer(primary_bytes), Answer(shadow_bytes))
    rest = rest_answer(Answer(response_bytes), "shadow")  # the same answer in the REST binary form

A ModelInferResponse becomes the answer a REST server would have sent with the binary tensor extension: a
JSON part (`model_name`, `model_version`, `id`, `parameters`, and `outputs` with `name`, `datatype`,
`shape`, `parameters.binary_data_size`) followed by every output's little-endian bytes, its length in the
`Inference-Header-Content-Length` header. `raw_output_contents` (one entry per output, BYTES elements each
after a 4-byte little-endian length, exactly the REST binary framing) is taken as it is; typed `contents` are
packed into the same bytes. Every comparator then reads gRPC answers as it reads REST ones: `oip-top1` and
`oip-numeric` the tensors, `json-exact` the JSON part (ids ignored) and the tensor bytes.

Bounds: the message is at most the shadow body cap (the dispatcher's channel refuses larger answers); typed
contents may unpack to at most `MAX_EXPANSION` times the cap (int64 values of one varint byte each), past
which the answer is not compared. Conversion runs where the comparison runs: inline for small answers, in
the compare pool for large ones (`shadow.compare.pool`), never as extra work on the request path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from google.protobuf.message import DecodeError

from shadow.compare.answer import BINARY_HEADER, Answer, NotComparable, as_answer
from shadow.compare.base import Comparator, Comparison, not_comparable

MAX_EXPANSION = 8
"""Typed contents may unpack to this many times the answer's size (an int64 varint of 1 byte is 8 bytes)."""
TYPED = {
    "BOOL": ("bool_contents", "<u1"),
    "INT8": ("int_contents", "<i1"),
    "INT16": ("int_contents", "<i2"),
    "INT32": ("int_contents", "<i4"),
    "INT64": ("int64_contents", "<i8"),
    "UINT8": ("uint_contents", "<u1"),
    "UINT16": ("uint_contents", "<u2"),
    "UINT32": ("uint_contents", "<u4"),
    "UINT64": ("uint64_contents", "<u8"),
    "FP32": ("fp32_contents", "<f4"),
    "FP64": ("fp64_contents", "<f8"),
}
"""The `InferTensorContents` field of each fixed-width datatype, and its little-endian NumPy type."""
PREFIX = 4
"""BYTES elements: a 4-byte little-endian length before each."""


@dataclass(frozen=True, slots=True)
class GrpcAnswers:
    """A comparator of ModelInferResponse answers: both are read into the REST form, then `inner` compares.

    Picklable (the compare pool sends it to its worker process)."""

    inner: Comparator

    def __call__(self, primary: Answer | bytes, shadow: Answer | bytes) -> Comparison:
        """Compare the two gRPC answers with the inner comparator."""
        try:
            a = rest_answer(as_answer(primary), "primary")
            b = rest_answer(as_answer(shadow), "shadow")
        except NotComparable as why:
            return not_comparable(str(why))
        return self.inner(a, b)


def rest_answer(answer: Answer, who: str) -> Answer:
    """The ModelInferResponse `answer.body` as a REST answer with the binary tensor extension."""
    from oipgrpc.messages import ModelInferResponse  # here: a compare worker imports it on first use

    try:
        message: Any = ModelInferResponse.FromString(answer.body)
    except DecodeError:
        raise NotComparable(f"{who} answer is not a ModelInferResponse") from None
    outputs, raws = message.outputs, message.raw_output_contents
    if raws and len(raws) != len(outputs):
        raise NotComparable(f"{who} answer has {len(raws)} raw_output_contents for {len(outputs)} outputs")
    budget = MAX_EXPANSION * answer.max_bytes
    heads: list[dict[str, object]] = []
    chunks: list[bytes] = []
    for i, tensor in enumerate(outputs):
        data = bytes(raws[i]) if raws else typed_bytes(tensor, f"{who} output {tensor.name!r}")
        budget -= len(data)
        if budget < 0:
            raise NotComparable(f"{who} answer's typed contents unpack to more than {MAX_EXPANSION}× its cap")
        params = parameters(tensor.parameters)
        params["binary_data_size"] = len(data)
        heads.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": params,
            }
        )
        chunks.append(data)
    doc: dict[str, object] = {
        "model_name": message.model_name,
        "model_version": message.model_version,
        "id": message.id,
        "outputs": heads,
    }
    if message.parameters:
        doc["parameters"] = parameters(message.parameters)
    head = orjson.dumps(doc)
    return Answer(head + b"".join(chunks), {BINARY_HEADER: str(len(head))}, answer.max_bytes)


def typed_bytes(tensor: Any, where: str) -> bytes:
    """An output's typed `contents` as the bytes `raw_output_contents` would hold."""
    contents = tensor.contents
    datatype = tensor.datatype.upper()
    if datatype == "BYTES":
        elements = contents.bytes_contents
        return b"".join(len(e).to_bytes(PREFIX, "little") + e for e in elements)
    typed = TYPED.get(datatype)
    if typed is None:
        raise NotComparable(f"{where} has datatype {datatype[:20]!r} without raw_output_contents")
    field, dtype = typed
    values = getattr(contents, field)
    try:
        array = np.fromiter(values, dtype=np.dtype(dtype), count=len(values))
    except (OverflowError, ValueError):
        raise NotComparable(f"{where} has {field} values out of range for {datatype}") from None
    return array.tobytes()


def parameters(params: Any) -> dict[str, object]:
    """A `map<string, InferParameter>` as the JSON object REST would send."""
    out: dict[str, object] = {}
    for key in sorted(params):
        value = params[key]
        kind = value.WhichOneof("parameter_choice")
        out[key] = getattr(value, kind) if kind is not None else None
    return out
