"""The model server's command line: options, defaults, start-up failures, and a cheap import."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from modelserver import cli


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults() -> None:
    args = parse("--model", "models/digits.onnx")
    assert (args.model, args.port, args.host, args.name) == (
        Path("models/digits.onnx"),
        8000,
        "127.0.0.1",
        None,
    )
    assert (args.latency_ms, args.error_rate, args.seed) == (0.0, 0.0, None)


@pytest.mark.parametrize(
    "argv", [["--error-rate", "1.5"], ["--error-rate", "-0.1"], ["--latency-ms", "-5"], ["--ttft-ms", "-1"]]
)
def test_bad_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    model = ["--model", "m.onnx"]
    with pytest.raises(SystemExit) as info:
        parse(*model, *argv)
    assert info.value.code == 2
    capsys.readouterr()


def test_importing_the_cli_does_not_load_onnxruntime() -> None:
    code = "import sys, modelserver.cli; sys.exit('onnxruntime' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_a_missing_model_exits_1_with_a_json_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(parse("--model", str(tmp_path / "absent.onnx"))) == 1
    line = orjson.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "error"
    assert "no model file" in line["error"]
