"""`outrider validate` and `outrider schema`: check experiment files, print or write the JSON Schema.

Usage: `python -m experiments.validate FILE...`; after changing the models, refresh the committed
`experiments/schema.json` with `python -m experiments.validate --write-schema`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from experiments.config import check_files
from experiments.schema_models import json_schema

SCHEMA_FILE = Path(__file__).with_name("schema.json")
"""The committed schema (a test checks it is current)."""


def validate_main(files: list[str], out: TextIO, err: TextIO) -> int:
    """Check `files` as one set: problems to `err`, `FILE: ok` per good file to `out`; 2 if any problem."""
    problems = check_files(files)
    for problem in problems:
        print(problem, file=err)
    bad = {p.file for p in problems}
    for name in dict.fromkeys(files):
        if name not in bad:
            print(f"{name}: ok", file=out)
    return 2 if problems else 0


def schema_text() -> str:
    """The JSON Schema of experiment files as committed: indented, sorted keys, trailing newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_main(out: TextIO) -> int:
    """Print the JSON Schema to `out` (`outrider schema`)."""
    out.write(schema_text())
    return 0


def write_schema(path: Path = SCHEMA_FILE) -> None:
    """Write the JSON Schema to `path` (default: the committed `experiments/schema.json`)."""
    path.write_text(schema_text(), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of `python -m experiments.validate`."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.validate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("files", nargs="*", metavar="FILE", help="experiment files to check")
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema")
    parser.add_argument("--write-schema", action="store_true", help=f"write the JSON Schema to {SCHEMA_FILE}")
    args = parser.parse_args(argv)
    if args.write_schema:
        write_schema()
        print(f"wrote {SCHEMA_FILE}")
    if args.schema:
        schema_main(sys.stdout)
    if args.files:
        return validate_main(args.files, sys.stdout, sys.stderr)
    if not (args.schema or args.write_schema):
        parser.error("give FILEs to check, --schema or --write-schema")
    return 0


if __name__ == "__main__":
    sys.exit(main())
