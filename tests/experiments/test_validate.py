"""`outrider validate` / `outrider schema` entry points, and the committed JSON Schema."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from experiments.schema_models import SCHEMA_ID
from experiments.validate import SCHEMA_FILE, main, schema_main, schema_text, validate_main, write_schema

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [str(REPO / "examples" / "canary.yaml"), str(REPO / "examples" / "ab-test.yaml")]
BAD = str(Path(__file__).parent / "data" / "all-errors.yaml")


def test_good_files_print_ok_and_return_0() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert validate_main(EXAMPLES, out, err) == 0
    assert out.getvalue().splitlines() == [f"{name}: ok" for name in EXAMPLES]
    assert err.getvalue() == ""


def test_problems_go_to_err_and_return_2(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    out, err = io.StringIO(), io.StringIO()
    assert validate_main([EXAMPLES[0], BAD, missing], out, err) == 2
    assert out.getvalue() == f"{EXAMPLES[0]}: ok\n"
    lines = err.getvalue().splitlines()
    assert len(lines) == 12
    assert f"{BAD}:9:3: spec.variants: no stable variant: exactly one variant needs role: stable" in lines
    assert lines[-1] == f"{missing}:1:1: (file): cannot read: No such file or directory"


def test_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), (
        "experiments/schema.json is stale: regenerate it with `make schema`"
        " or `python -m experiments.validate --write-schema`"
    )


def test_schema_describes_the_file_format() -> None:
    schema = json.loads(schema_text())
    assert schema["$id"] == SCHEMA_ID
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    spec = schema["$defs"]["Spec"]
    assert {"match", "variants", "assignment", "strategy", "timeout", "maxBodyBytes"} <= set(
        spec["properties"]
    )
    assert set(schema["$defs"]["Strategy"]["properties"]) == {"canary", "abTest", "blueGreen", "shadow"}
    for name, definition in schema["$defs"].items():
        assert definition.get("description"), name
        for field, prop in definition["properties"].items():
            assert prop.get("description"), f"{name}.{field} has no description"


def test_schema_main_prints_the_schema() -> None:
    out = io.StringIO()
    assert schema_main(out) == 0
    assert out.getvalue() == schema_text()


def test_write_schema(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    write_schema(target)
    assert target.read_text(encoding="utf-8") == schema_text()


def test_module_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*EXAMPLES]) == 0
    assert main([BAD]) == 2
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"{name}: ok" for name in EXAMPLES]
    assert captured.err.count(BAD) == 11
    with pytest.raises(SystemExit):
        main([])
