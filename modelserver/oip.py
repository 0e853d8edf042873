"""Open Inference Protocol v2 (KServe v2) REST bodies: check an infer request against a model, encode replies.

Pure: no sockets, no onnxruntime, so every rejection is unit-testable. A request tensor must carry exactly the
model input's datatype (no silent FP64→FP32 narrowing); its `data` may be flat or nested, and JSON integers
are accepted as values of a float tensor. Every rejection is an `OipError` whose message is sent to the client
as `{"error": message}` with its HTTP status.

Usage: req = parse_infer_request(body, model_inputs, model_outputs); reply = encode_infer_response(...)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

MAX_BATCH = 1024
"""Rows per request; clients split bigger batches (bounds one request's latency and memory)."""

DATATYPES: Mapping[str, np.dtype[Any]] = {
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
}
"""The OIP datatypes this server can serve, with their numpy types."""

_ACCEPTED_KINDS = {"f": "iuf", "i": "iu"}  # numpy kind of the tensor → kinds of JSON data it accepts


class OipError(Exception):
    """A request the protocol rejects; `status` is the HTTP status, the message is what the client reads."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model input or output: name, OIP datatype and shape (-1 marks a dynamic dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def metadata(self) -> dict[str, Any]:
        """The tensor as it appears in model metadata."""
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A checked infer request: arrays ready for the runtime and the outputs to return, in order."""

    id: str | None
    inputs: dict[str, npt.NDArray[Any]]
    outputs: tuple[str, ...]


def parse_infer_request(
    body: bytes,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    max_batch: int = MAX_BATCH,
) -> InferRequest:
    """Check `body` against the model's `inputs` and `outputs`; raise `OipError` (400) at the first fault."""
    doc = _json_object(body)
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise OipError("'id' must be a string")
    tensors = doc.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise OipError("'inputs' must be a non-empty list of tensors")
    specs = {spec.name: spec for spec in inputs}
    arrays: dict[str, npt.NDArray[Any]] = {}
    for tensor in tensors:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise OipError("each entry of 'inputs' must be an object with a string 'name'")
        name = tensor["name"]
        if name in arrays:
            raise OipError(f"input '{name}' is given more than once")
        if name not in specs:
            raise OipError(f"unknown input '{name}'; the model's inputs are: {_names(inputs)}")
        arrays[name] = _tensor(tensor, specs[name], max_batch)
    missing = [spec.name for spec in inputs if spec.name not in arrays]
    if missing:
        raise OipError(f"missing input '{missing[0]}'")
    return InferRequest(request_id, arrays, _requested_outputs(doc.get("outputs"), outputs))


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OipError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise OipError("request body must be a JSON object")
    return doc


def _names(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(spec.name for spec in specs)


def _requested_outputs(requested: object, outputs: Sequence[TensorSpec]) -> tuple[str, ...]:
    """Names of the outputs to return: those asked for, or all of them when the request names none."""
    if requested is None:
        return tuple(spec.name for spec in outputs)
    if not isinstance(requested, list):
        raise OipError("'outputs' must be a list of objects with a 'name'")
    known = {spec.name for spec in outputs}
    names: list[str] = []
    for item in requested:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise OipError("'outputs' must be a list of objects with a 'name'")
        if name not in known:
            raise OipError(f"unknown output '{name}'; the model's outputs are: {_names(outputs)}")
        if name in names:
            raise OipError(f"output '{name}' is requested more than once")
        names.append(name)
    return tuple(names) if names else tuple(spec.name for spec in outputs)


def _tensor(tensor: dict[str, Any], spec: TensorSpec, max_batch: int) -> npt.NDArray[Any]:
    """One request tensor as an array of the model's type and shape."""
    where = f"input '{spec.name}'"
    datatype = tensor.get("datatype")
    if datatype != spec.datatype:
        raise OipError(f"{where}: datatype {_show(datatype)} does not match the model's {spec.datatype}")
    shape = _shape(tensor.get("shape"), spec, max_batch)
    params = tensor.get("parameters")
    if isinstance(params, dict) and "binary_data_size" in params:
        raise OipError(f"{where}: binary tensor data is not supported; send 'data' as JSON")
    data = tensor.get("data")
    if not isinstance(data, list):
        raise OipError(f"{where}: 'data' must be a list of numbers (flat or nested)")
    try:
        raw = np.asarray(data)
    except ValueError:
        raise OipError(f"{where}: nested 'data' is ragged") from None
    dtype = DATATYPES[spec.datatype]
    if raw.size and raw.dtype.kind not in _ACCEPTED_KINDS[dtype.kind]:
        raise OipError(f"{where}: 'data' must hold only numbers fit for {spec.datatype}")
    if raw.ndim > 1 and raw.shape != shape:
        raise OipError(f"{where}: nested 'data' has shape {list(raw.shape)}, not the declared {list(shape)}")
    if raw.size != math.prod(shape):
        raise OipError(f"{where}: shape {list(shape)} needs {math.prod(shape)} values, 'data' has {raw.size}")
    return _cast(raw, spec.datatype, where).reshape(shape)


def _show(value: object) -> str:
    return f"'{value}'" if isinstance(value, str) else "missing" if value is None else repr(value)


def _shape(shape: object, spec: TensorSpec, max_batch: int) -> tuple[int, ...]:
    """The declared shape, checked against the model's (rank, fixed dimensions, batch limit)."""
    where = f"input '{spec.name}'"
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise OipError(f"{where}: 'shape' must be a list of non-negative integers")
    dims = tuple(int(d) for d in shape)
    fits = len(dims) == len(spec.shape) and all(m in (-1, d) for m, d in zip(spec.shape, dims, strict=True))
    if not fits:
        raise OipError(f"{where}: shape {list(dims)} does not fit the model's {list(spec.shape)}")
    if spec.shape and spec.shape[0] == -1 and not 1 <= dims[0] <= max_batch:
        raise OipError(f"{where}: batch size {dims[0]} is outside 1..{max_batch}")
    return dims


def _cast(raw: npt.NDArray[Any], datatype: str, where: str) -> npt.NDArray[Any]:
    """`raw` as `datatype`, refusing values that do not survive the conversion."""
    dtype = DATATYPES[datatype]
    if dtype.kind == "i":
        info = np.iinfo(dtype)
        if raw.size and (raw.min() < info.min or raw.max() > info.max):
            raise OipError(f"{where}: values out of range for {datatype}")
        return raw.astype(dtype)
    with np.errstate(over="ignore"):  # overflow to inf is reported just below, not as a RuntimeWarning
        out = raw.astype(dtype)
    if not np.isfinite(out).all():
        raise OipError(f"{where}: values out of range for {datatype}")
    return out


def checked_shape(shape: object, spec: TensorSpec, max_batch: int = MAX_BATCH) -> tuple[int, ...]:
    """A request's declared shape, checked against the model's (OipError if it does not fit)."""
    return _shape(shape, spec, max_batch)


def datatype_of(array: npt.NDArray[Any]) -> str:
    """The OIP datatype of an array this server produces."""
    return _datatype_of(array)


def _datatype_of(array: npt.NDArray[Any]) -> str:
    for name, dtype in DATATYPES.items():
        if array.dtype == dtype:
            return name
    raise TypeError(f"no OIP datatype for numpy {array.dtype}")


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[tuple[str, npt.NDArray[Any]]],
) -> bytes:
    """The JSON infer reply: each output with its shape, datatype and flat row-major data."""
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        doc["id"] = request_id
    doc["outputs"] = [
        {
            "name": name,
            "shape": list(array.shape),
            "datatype": _datatype_of(array),
            "data": np.ascontiguousarray(array).ravel(),
        }
        for name, array in outputs
    ]
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def error_body(message: str) -> bytes:
    """The OIP error reply body."""
    return orjson.dumps({"error": message})
