"""A variant whose server knows the model under another name or version gets the path rewritten."""

from __future__ import annotations

import pytest

from experiments.model_paths import rewrite_path
from oipgrpc import messages as m
from proxy.grpcfront.forward import renamed


@pytest.mark.parametrize(
    ("path", "model", "version", "out"),
    [
        ("/v2/models/digits/infer", "digits-v2", None, "/v2/models/digits-v2/infer"),
        ("/v2/models/digits/infer", None, "3", "/v2/models/digits/versions/3/infer"),
        ("/v2/models/digits/versions/1/infer", None, "2", "/v2/models/digits/versions/2/infer"),
        ("/v2/models/digits/versions/1/infer?x=1", "m", None, "/v2/models/m/versions/1/infer?x=1"),
        ("/v1/models/digits:predict", "m2", None, "/v1/models/m2:predict"),
        ("/v1/models/digits/versions/1:predict", None, "5", "/v1/models/digits/versions/5:predict"),
        ("/v2/models/digits/infer", None, None, "/v2/models/digits/infer"),
        ("/v2/health/ready", "m", "1", "/v2/health/ready"),  # not a model path: unchanged
        ("/score", "m", "1", "/score"),
    ],
)
def test_rewrite_path(path: str, model: str | None, version: str | None, out: str) -> None:
    assert rewrite_path(path, model, version) == out


def test_a_grpc_call_is_renamed_and_keeps_its_tensors() -> None:
    request = m.ModelInferRequest(model_name="digits", model_version="1", id="r")
    request.inputs.add(name="input", datatype="FP32", shape=[1, 64])
    request.raw_input_contents.append(bytes(256))
    out = m.ModelInferRequest.FromString(renamed(request.SerializeToString(), "digits-int8", None))
    assert (out.model_name, out.model_version, out.id) == ("digits-int8", "1", "r")
    assert out.raw_input_contents[0] == bytes(256)
    assert (
        m.ModelInferRequest.FromString(renamed(request.SerializeToString(), None, "7")).model_version == "7"
    )
