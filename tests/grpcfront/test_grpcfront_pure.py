"""The gRPC port's pure parts: status mapping both ways, peers, metadata as headers, the REST path a call
is routed as, and the OIP messages (wire-compatible with tritonclient's own stubs, in a private pool)."""

from __future__ import annotations

import grpc
import pytest
from tritonclient.grpc import service_pb2 as triton

from oipgrpc import build
from oipgrpc import messages as m
from proxy.grpcfront.front import headers_of, infer_path, peer_address
from proxy.grpcfront.status import code_of_http, code_of_number, http_of


def test_status_mapping_keeps_errors_errors_and_client_faults_client_faults() -> None:
    assert http_of(grpc.StatusCode.OK) == 200
    assert http_of(grpc.StatusCode.INTERNAL) >= 500
    assert http_of(grpc.StatusCode.UNKNOWN) >= 500
    assert http_of(grpc.StatusCode.INVALID_ARGUMENT) == 400  # the caller's fault: not the model's error
    assert http_of(grpc.StatusCode.DEADLINE_EXCEEDED) == 504
    assert code_of_http(401) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of_http(429) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert code_of_http(404) == grpc.StatusCode.NOT_FOUND
    assert code_of_http(502) == grpc.StatusCode.UNAVAILABLE
    assert code_of_http(599) == grpc.StatusCode.INTERNAL
    assert code_of_http(418) == grpc.StatusCode.INVALID_ARGUMENT
    for code in grpc.StatusCode:
        assert code_of_number(code.value[0]) == code
    assert code_of_number(999) == grpc.StatusCode.UNKNOWN


@pytest.mark.parametrize(
    ("peer", "address"),
    [("ipv4:127.0.0.1:5000", "127.0.0.1"), ("ipv6:[::1]:5000", "::1"), ("unix:/tmp/s", None), ("", None)],
)
def test_peer_address(peer: str, address: str | None) -> None:
    assert peer_address(peer) == address


def test_metadata_becomes_headers_without_binary_or_control_keys() -> None:
    metadata = (
        ("authorization", "Bearer t"),
        ("x-user-id", "u1"),
        ("trace-bin", b"\x00\x01"),
        ("x-outrider-variant", "candidate"),  # a client must not steer outrider with its own control keys
        ("x-user-id", "u2"),
    )
    headers = headers_of(metadata)
    assert headers.getall("x-user-id") == ["u1", "u2"]
    assert headers["Authorization"] == "Bearer t"
    assert "trace-bin" not in headers
    assert "x-outrider-variant" not in headers


def test_a_call_is_routed_as_its_rest_path() -> None:
    assert infer_path("digits", "") == "/v2/models/digits/infer"
    assert infer_path("digits", "2") == "/v2/models/digits/versions/2/infer"


def test_messages_are_wire_compatible_with_tritonclient_and_both_load_in_one_process() -> None:
    theirs = triton.ModelInferRequest(model_name="digits", model_version="1", id="r1")
    tensor = theirs.inputs.add(name="input", datatype="FP32", shape=[2, 64])
    tensor.parameters["binary_data_size"].int64_param = 512
    theirs.raw_input_contents.append(bytes(512))
    ours = m.ModelInferRequest.FromString(theirs.SerializeToString())
    assert (ours.model_name, ours.model_version, ours.id) == ("digits", "1", "r1")
    assert list(ours.inputs[0].shape) == [2, 64]
    assert ours.inputs[0].parameters["binary_data_size"].int64_param == 512
    reply = m.ModelInferResponse(model_name="digits", id="r1")
    reply.outputs.add(name="probabilities", datatype="FP32", shape=[2, 10])
    reply.raw_output_contents.append(bytes(80))
    back = triton.ModelInferResponse.FromString(reply.SerializeToString())
    assert back.outputs[0].name == "probabilities"
    assert len(back.raw_output_contents[0]) == 80
    assert m.METHODS["ModelInfer"].path == "/inference.GRPCInferenceService/ModelInfer"


def test_the_committed_descriptor_is_the_proto_compiled() -> None:
    assert build.main(["--check"]) == 0
