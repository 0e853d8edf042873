"""One ONNX model in onnxruntime, described in OIP terms, turning an infer body into a reply body.

`OnnxModel.infer` is blocking (parse, run, encode) and safe to call from several threads at once; the server
runs it in a worker pool so the event loop never waits on numpy or onnxruntime.

Usage: model = OnnxModel.load(Path("models/digits.onnx"), name="digits"); reply = model.infer(body)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from modelserver import oip

PLATFORM = "onnxruntime_onnx"
VERSION = "1"
"""The one version a server holds; OIP clients may name it in `/v2/models/{name}/versions/{version}`."""

_ONNX_TYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
}


class ModelLoadError(Exception):
    """The model file cannot be served: missing, not ONNX, or with tensor types this server does not speak."""


def _spec(node: Any) -> oip.TensorSpec:
    """An onnxruntime NodeArg as an OIP tensor; symbolic or unknown dimensions become -1."""
    datatype = _ONNX_TYPES.get(node.type)
    if datatype is None:
        raise ModelLoadError(f"tensor '{node.name}' has type {node.type}, which this server does not serve")
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
    return oip.TensorSpec(node.name, datatype, shape)


@dataclass(frozen=True, slots=True)
class OnnxModel:
    """A loaded model: its name, version, OIP tensor descriptions and the onnxruntime session."""

    name: str
    version: str
    inputs: tuple[oip.TensorSpec, ...]
    outputs: tuple[oip.TensorSpec, ...]
    session: Any

    @classmethod
    def load(cls, path: Path, name: str, version: str = VERSION) -> OnnxModel:
        """Open `path` with onnxruntime's CPU provider; raise `ModelLoadError` if it cannot be served."""
        if not path.is_file():
            raise ModelLoadError(f"no model file at {path}")
        options = ort.SessionOptions()
        # Concurrency comes from the server's worker threads; one thread per run avoids nested thread pools
        # fighting over the same cores.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # onnxruntime's own warnings are plain text; keep stderr JSON lines
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelLoadError(f"cannot load {path}: {exc}") from exc
        inputs = tuple(_spec(n) for n in session.get_inputs())
        outputs = tuple(_spec(n) for n in session.get_outputs())
        return cls(name, version, inputs, outputs, session)

    def metadata(self) -> dict[str, Any]:
        """The OIP model metadata reply."""
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [spec.metadata() for spec in self.inputs],
            "outputs": [spec.metadata() for spec in self.outputs],
        }

    def run(self, request: oip.InferRequest) -> Sequence[tuple[str, Any]]:
        """The requested outputs for a checked request, in the order asked."""
        arrays = self.session.run(list(request.outputs), request.inputs)
        return list(zip(request.outputs, arrays, strict=True))

    def infer(self, body: bytes) -> bytes:
        """Parse, run and encode one infer request (blocking); raises `oip.OipError` for bad requests."""
        request = oip.parse_infer_request(body, self.inputs, self.outputs)
        return oip.encode_infer_response(self.name, self.version, request.id, self.run(request))
