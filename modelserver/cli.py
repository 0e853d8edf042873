"""Command line of the model server (`outrider serve-model`, or `python -m modelserver`).

onnxruntime is imported only when the server starts, so building the outrider parser stays cheap.

Usage: outrider serve-model --model models/digits.onnx --port 0 --latency-ms 20 --error-rate 0.05 --seed 1
       outrider serve-model --port 0 --ttft-ms 50 --itl-ms 10      # the OpenAI-compatible text endpoint alone
Every server also answers POST /v1/chat/completions and /v1/completions (modelserver.llm).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

from modelserver.faults import Faults
from modelserver.log import log_event

if TYPE_CHECKING:
    import grpc
    from aiohttp import web

SERVICE = "modelserver"


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be within 0..1, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model server's options to `parser`."""
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="PATH",
        help="ONNX model file to serve (none: only the OpenAI-compatible text endpoint)",
    )
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=None,
        metavar="N",
        help="also serve the Open Inference Protocol over gRPC on this port (0 = any free port)",
    )
    parser.add_argument("--name", default=None, help="model name in URLs (default: file stem, e.g. digits)")
    parser.add_argument(
        "--latency-ms",
        type=_non_negative,
        default=0.0,
        metavar="MS",
        help="extra latency added to every infer request",
    )
    parser.add_argument(
        "--error-rate",
        type=_probability,
        default=0.0,
        metavar="P",
        help="share of infer requests answered 500 (injected fault)",
    )
    parser.add_argument(
        "--ttft-ms",
        type=_non_negative,
        default=0.0,
        metavar="MS",
        help="text endpoint: time to the first token",
    )
    parser.add_argument(
        "--itl-ms",
        type=_non_negative,
        default=0.0,
        metavar="MS",
        help="text endpoint: time between tokens",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the fault injector's random source (default: unseeded)",
    )


def main(args: argparse.Namespace) -> int:
    """Load the model and serve it until SIGTERM/SIGINT; 0 after a clean stop, 1 if the model won't load."""
    # Imported here: these pull in onnxruntime, which `outrider --help` and the other commands never need.
    from modelserver.app import build_app
    from modelserver.llm import LlmKnobs
    from modelserver.runtime import ModelLoadError, OnnxModel
    from modelserver.server import GrpcPort, serve

    model_path: Path | None = args.model
    name: str = args.name or (model_path.stem if model_path is not None else "tiny-llm")
    model = None
    if model_path is not None:
        try:
            model = OnnxModel.load(model_path, name)
        except ModelLoadError as exc:
            log_event("error", service=SERVICE, error=str(exc))
            return 1
    faults = Faults(args.latency_ms / 1000, args.error_rate, random.Random(args.seed))
    app = build_app(model, faults, LlmKnobs(name, args.ttft_ms / 1000, args.itl_ms / 1000))
    rpc = None
    if args.grpc_port is not None and model is None:
        log_event("error", service=SERVICE, error="--grpc-port needs --model (gRPC serves the ONNX model)")
        return 1
    if model is not None and args.grpc_port is not None:
        from modelserver.app import EXECUTOR
        from modelserver.grpc_service import ModelService

        def handler(started: web.Application) -> grpc.GenericRpcHandler:
            return ModelService(model, faults, started[EXECUTOR]).handler()

        rpc = GrpcPort(args.grpc_port, handler)
    try:
        uvloop.run(serve(app, args.host, args.port, service=SERVICE, grpc_port=rpc, model=name))
    except OSError as exc:  # the address is taken or not ours to bind
        log_event("error", service=SERVICE, error=f"cannot listen on {args.host}:{args.port}: {exc}")
        return 1
    return 0
