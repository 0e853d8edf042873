"""Compile oipgrpc/grpc_service.proto into oipgrpc/descriptor.py (the serialized FileDescriptorProto).

Usage: python -m oipgrpc.build [--check]   (needs grpcio-tools, in the `dev` extra)
With --check it exits 1 when the committed descriptor differs from a fresh compile (CI-friendly).
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "grpc_service.proto"
OUT = HERE / "descriptor.py"
HEADER = '''"""grpc_service.proto's serialized descriptor (from `python -m oipgrpc.build`; do not edit)."""

import base64

FILE = base64.b64decode(
'''


def compile_descriptor() -> bytes:
    """The FileDescriptorProto of grpc_service.proto, serialized (protoc from grpcio-tools)."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.bin"
        argv = ["protoc", f"-I{HERE}", f"--descriptor_set_out={out}", str(PROTO)]
        if protoc.main(argv) != 0:
            raise RuntimeError("protoc failed on grpc_service.proto")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return bytes(fds.file[0].SerializeToString(deterministic=True))


def render(blob: bytes) -> str:
    """descriptor.py's text for `blob`: base64 in lines that fit the line length."""
    text = base64.b64encode(blob).decode()
    lines = [f'    "{text[i : i + 96]}"' for i in range(0, len(text), 96)]
    return HEADER + "\n".join(lines) + "\n)\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) oipgrpc/descriptor.py."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    blob = compile_descriptor()
    if args.check:
        from oipgrpc.descriptor import FILE

        return 0 if blob == FILE else 1
    OUT.write_text(render(blob))
    return 0


if __name__ == "__main__":
    sys.exit(main())
