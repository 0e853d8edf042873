"""The reference model server's gRPC port: the Open Inference Protocol's `inference.GRPCInferenceService` over
the same `OnnxModel` and faults as the REST routes (modelserver.app).

Usage: handler = grpc_handler(model, faults, executor); server.add_generic_rpc_handlers((handler,))
`ModelStreamInfer` answers each request of the stream in turn (a failed one with its `error_message`).
Inputs come as `raw_input_contents` (what tritonclient sends) or typed `contents`; outputs go back as
`raw_output_contents` (little-endian, row-major), which every OIP gRPC client reads. A request the protocol
rejects is INVALID_ARGUMENT (NOT_FOUND for another model); an injected fault is INTERNAL.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from modelserver import oip
from modelserver.faults import Faults
from modelserver.runtime import OnnxModel
from oipgrpc import messages as m

CONTENTS = {
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
}
"""Which `InferTensorContents` field carries each datatype this server serves."""

Handler = Callable[[Any, grpc.aio.ServicerContext], Coroutine[Any, Any, Any]]


def tensor_of(tensor: Any, raw: bytes | None, spec: oip.TensorSpec) -> npt.NDArray[Any]:
    """One request tensor (its raw bytes, else its typed contents) as an array of the model's type, shape."""
    where = f"input '{spec.name}'"
    if tensor.datatype != spec.datatype:
        raise oip.OipError(
            f"{where}: datatype '{tensor.datatype}' does not match the model's {spec.datatype}"
        )
    shape = oip.checked_shape(list(tensor.shape), spec, oip.MAX_BATCH)
    dtype = oip.DATATYPES[spec.datatype].newbyteorder("<")
    if raw is not None:
        if len(raw) != math.prod(shape) * dtype.itemsize:
            raise oip.OipError(f"{where}: {len(raw)} raw bytes do not fill shape {list(shape)}")
        return np.frombuffer(raw, dtype=dtype).astype(oip.DATATYPES[spec.datatype]).reshape(shape)
    values = getattr(tensor.contents, CONTENTS[spec.datatype])
    if len(values) != math.prod(shape):
        raise oip.OipError(f"{where}: shape {list(shape)} needs {math.prod(shape)} values, got {len(values)}")
    return np.asarray(values, dtype=oip.DATATYPES[spec.datatype]).reshape(shape)


def infer_request(request: Any, model: OnnxModel) -> oip.InferRequest:
    """A checked `oip.InferRequest` from a ModelInferRequest (OipError at the first fault)."""
    specs = {spec.name: spec for spec in model.inputs}
    raws = list(request.raw_input_contents)
    if raws and len(raws) != len(request.inputs):
        raise oip.OipError("raw_input_contents must hold one entry per input")
    arrays: dict[str, npt.NDArray[Any]] = {}
    for i, tensor in enumerate(request.inputs):
        if tensor.name not in specs:
            raise oip.OipError(f"unknown input '{tensor.name}'")
        if tensor.name in arrays:
            raise oip.OipError(f"input '{tensor.name}' is given more than once")
        arrays[tensor.name] = tensor_of(tensor, raws[i] if raws else None, specs[tensor.name])
    missing = [spec.name for spec in model.inputs if spec.name not in arrays]
    if missing:
        raise oip.OipError(f"missing input '{missing[0]}'")
    known = [spec.name for spec in model.outputs]
    asked = tuple(o.name for o in request.outputs) or tuple(known)
    unknown = [name for name in asked if name not in known]
    if unknown:
        raise oip.OipError(f"unknown output '{unknown[0]}'")
    return oip.InferRequest(request.id or None, arrays, asked)


def infer_response(model: OnnxModel, request_id: str, outputs: list[tuple[str, npt.NDArray[Any]]]) -> Any:
    """The ModelInferResponse of `outputs`, as raw little-endian tensors."""
    reply = m.ModelInferResponse(model_name=model.name, model_version=model.version, id=request_id)
    for name, array in outputs:
        reply.outputs.add(name=name, datatype=oip.datatype_of(array), shape=list(array.shape))
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        reply.raw_output_contents.append(little.tobytes())
    return reply


class ModelService:
    """The service's handlers for one model."""

    def __init__(self, model: OnnxModel, faults: Faults, executor: ThreadPoolExecutor) -> None:
        self.model, self.faults, self.executor = model, faults, executor

    async def server_live(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """The process answers."""
        return m.ServerLiveResponse(live=True)

    async def server_ready(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """The model is loaded before the port opens."""
        return m.ServerReadyResponse(ready=True)

    async def server_metadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Name and version of this server."""
        return m.ServerMetadataResponse(name="outrider-modelserver", version="1")

    async def model_ready(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Ready when it names this model."""
        await self._check(request.name, request.version, context)
        return m.ModelReadyResponse(ready=True)

    async def model_metadata(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """The model's inputs and outputs."""
        await self._check(request.name, request.version, context)
        meta = self.model.metadata()
        reply = m.ModelMetadataResponse(
            name=meta["name"], versions=meta["versions"], platform=meta["platform"]
        )
        for side in ("inputs", "outputs"):
            for t in meta[side]:
                getattr(reply, side).add(name=t["name"], datatype=t["datatype"], shape=t["shape"])
        return reply

    async def model_infer(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Faults first (one draw per request), then inference in the pool."""
        await self._check(request.model_name, request.model_version, context)
        fail = self.faults.should_fail()
        await self.faults.delay()
        if fail:
            await context.abort(grpc.StatusCode.INTERNAL, "injected fault")
        try:
            checked = infer_request(request, self.model)
        except oip.OipError as err:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, err.message)
        loop = asyncio.get_running_loop()
        outputs = await loop.run_in_executor(self.executor, self.model.run, checked)
        return infer_response(self.model, request.id, list(outputs))

    async def model_stream_infer(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        """One answer per request on the stream; a request that fails answers its `error_message`."""
        loop = asyncio.get_running_loop()
        async for request in requests:
            if request.model_name != self.model.name:
                yield m.ModelStreamInferResponse(error_message=f"unknown model '{request.model_name}'")
                continue
            fail = self.faults.should_fail()
            await self.faults.delay()
            if fail:
                yield m.ModelStreamInferResponse(error_message="injected fault")
                continue
            try:
                checked = infer_request(request, self.model)
            except oip.OipError as err:
                yield m.ModelStreamInferResponse(error_message=err.message)
                continue
            outputs = await loop.run_in_executor(self.executor, self.model.run, checked)
            yield m.ModelStreamInferResponse(
                infer_response=infer_response(self.model, request.id, list(outputs))
            )

    async def _check(self, name: str, version: str, context: grpc.aio.ServicerContext) -> None:
        if name != self.model.name:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown model '{name}'")
        if version and version != self.model.version:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown version '{version}' of model '{name}'")

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving every unary method of the service."""
        table: dict[str, Handler] = {
            "ServerLive": self.server_live,
            "ServerReady": self.server_ready,
            "ServerMetadata": self.server_metadata,
            "ModelReady": self.model_ready,
            "ModelMetadata": self.model_metadata,
            "ModelInfer": self.model_infer,
        }
        methods = {
            name: grpc.unary_unary_rpc_method_handler(
                fn,
                request_deserializer=m.METHODS[name].request.FromString,
                response_serializer=m.METHODS[name].response.SerializeToString,
            )
            for name, fn in table.items()
        }
        methods["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
            self.model_stream_infer,
            request_deserializer=m.ModelInferRequest.FromString,
            response_serializer=m.ModelStreamInferResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(m.SERVICE, methods)
