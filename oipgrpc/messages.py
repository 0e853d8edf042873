"""Message classes of the OIP gRPC service, from a private descriptor pool, and the service's method table.

Usage: req = messages.ModelInferRequest.FromString(data); path = f"/{SERVICE}/ModelInfer"
Messages are dynamic protobuf classes (typed as `Any` here; their fields are the .proto's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from oipgrpc.descriptor import FILE

SERVICE = "inference.GRPCInferenceService"
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(descriptor_pb2.FileDescriptorProto.FromString(FILE))


def message(name: str) -> Any:
    """The class of message `inference.NAME`."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"inference.{name}"))


ServerLiveRequest = message("ServerLiveRequest")
ServerLiveResponse = message("ServerLiveResponse")
ServerReadyRequest = message("ServerReadyRequest")
ServerReadyResponse = message("ServerReadyResponse")
ModelReadyRequest = message("ModelReadyRequest")
ModelReadyResponse = message("ModelReadyResponse")
ServerMetadataRequest = message("ServerMetadataRequest")
ServerMetadataResponse = message("ServerMetadataResponse")
ModelMetadataRequest = message("ModelMetadataRequest")
ModelMetadataResponse = message("ModelMetadataResponse")
ModelInferRequest = message("ModelInferRequest")
ModelInferResponse = message("ModelInferResponse")
ModelStreamInferResponse = message("ModelStreamInferResponse")
InferTensorContents = message("InferTensorContents")


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC of the service."""

    name: str
    request: Any
    response: Any
    streaming: bool = False

    @property
    def path(self) -> str:
        """The HTTP/2 path gRPC uses for it: /inference.GRPCInferenceService/NAME."""
        return f"/{SERVICE}/{self.name}"


METHODS = {
    m.name: m
    for m in (
        Method("ServerLive", ServerLiveRequest, ServerLiveResponse),
        Method("ServerReady", ServerReadyRequest, ServerReadyResponse),
        Method("ModelReady", ModelReadyRequest, ModelReadyResponse),
        Method("ServerMetadata", ServerMetadataRequest, ServerMetadataResponse),
        Method("ModelMetadata", ModelMetadataRequest, ModelMetadataResponse),
        Method("ModelInfer", ModelInferRequest, ModelInferResponse),
        Method("ModelStreamInfer", ModelInferRequest, ModelStreamInferResponse, streaming=True),
    )
}
