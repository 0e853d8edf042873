"""The `outrider` command line: one sub-command per job, each a thin call into its package.

Usage: outrider run -c experiments/canary.yaml --listen 127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from modelserver import cli as modelserver_cli
from plumbing import compiled
from proxy.cli import commands
from proxy.cli import control as control_cli
from proxy.cli import load as load_cli
from proxy.settings.cli import add_setting_flags
from proxy.settings.model import SidecarFile

SIDECAR = SidecarFile()
"""The sidecar's defaults (proxy.settings.model): `export` and `report` read its data dir unless told."""


def env(name: str) -> str | None:
    """$OUTRIDER_<name>, or None."""
    return os.environ.get(f"OUTRIDER_{name}") or None


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (kept separate so tests and docs can inspect it)."""
    parser = argparse.ArgumentParser(prog="outrider", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run(sub)
    add_offline(sub)
    serve = sub.add_parser(
        "serve-model", help="run the reference ONNX model server (Open Inference Protocol v2)"
    )
    modelserver_cli.add_arguments(serve)
    serve.set_defaults(func=modelserver_cli.main)
    add_demo(sub)
    load_cli.add_parser(sub)
    control_cli.add_parsers(sub)  # status, promote, rollback, pause, resume
    return parser


def add_run(sub: Any) -> None:
    """`outrider run`: the sidecar (every setting a flag too)."""
    run = sub.add_parser("run", help="run the sidecar")
    run.add_argument(
        "-c", "--config", action="append", default=[], metavar="FILE", help="experiment file (repeatable)"
    )
    run.add_argument(
        "--settings",
        default=env("SETTINGS"),
        metavar="FILE",
        help="sidecar settings file (YAML, docs/settings.md); flags > $OUTRIDER_* > file > defaults",
    )
    add_setting_flags(run)
    # internal: how a supervisor (`--workers N`) starts its workers (docs/scale-out.md)
    run.add_argument("--worker-of", type=int, default=None, metavar="PID", help=argparse.SUPPRESS)
    run.add_argument("--worker-index", type=int, default=0, metavar="I", help=argparse.SUPPRESS)
    run.set_defaults(func=commands.cmd_run)


def add_offline(sub: Any) -> None:
    """The commands that work on files and stores: validate, schema, export, analyze, report."""
    validate = sub.add_parser("validate", help="check experiment files; exit 2 on any problem")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(func=commands.cmd_validate)
    schema = sub.add_parser("schema", help="print the JSON Schema of experiment files")
    schema.set_defaults(func=commands.cmd_schema)
    export = sub.add_parser("export", help="write stored outcomes as JSON Lines to stdout")
    export.add_argument("--data-dir", default=SIDECAR.data_dir)
    export.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="read a fleet's Redis store (redis://HOST:PORT/DB) instead of the data dir's SQLite file",
    )
    export.add_argument("--experiment", default=None, metavar="NAME")
    export.set_defaults(func=commands.cmd_export)
    analyze = sub.add_parser("analyze", help="re-judge an export offline, replaying the controller's looks")
    analyze.add_argument(
        "input", metavar="FILE.jsonl", help="outcome records (`outrider export`); - for stdin"
    )
    analyze.add_argument("-c", "--config", required=True, metavar="EXPERIMENT.yaml")
    analyze.add_argument("--json", action="store_true", help="machine-readable output (a contract)")
    analyze.set_defaults(func=commands.cmd_analyze)
    report = sub.add_parser(
        "report", help="write report.json, report.md and report.html (from a data dir or an export)"
    )
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--experiment", metavar="NAME", help="an experiment stored in --data-dir")
    source.add_argument("--input", metavar="EXPORT.jsonl", help="an export (`outrider export`), judged here")
    report.add_argument("--data-dir", default=None, help=f"with --experiment (default {SIDECAR.data_dir})")
    report.add_argument("-c", "--config", metavar="EXPERIMENT.yaml", help="with --input: the experiment")
    report.add_argument("-o", "--out", required=True, metavar="OUTDIR")
    report.set_defaults(func=commands.cmd_report)


def add_demo(sub: Any) -> None:
    """`outrider demo`."""
    demo = sub.add_parser(
        "demo", help="model versions behind outrider, many users, outrider decides on its own"
    )
    demo.add_argument(
        "--scenario",
        default="all",
        choices=["all", "everything", "regression", "better", "aa", "latency", "shadow", "llm"],
        help="all = regression (rolled back) then better (promoted); llm = streamed chat completions, "
        "rolled back on time to first token; everything = every scenario",
    )
    demo.add_argument("--users", type=int, default=5000, help="distinct users (sticky units)")
    demo.add_argument("--concurrency", type=int, default=16)
    demo.add_argument("--max-seconds", type=float, default=120.0, help="time cap per scenario")
    demo.add_argument("--models-dir", default="models")
    demo.add_argument("--data-dir", default="./outrider-data/demo", help="outcomes and reports of the demo")
    demo.set_defaults(func=commands.cmd_demo)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `outrider` script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # a supervisor starts its workers with them
    try:
        compiled.check()  # an edited module whose extension was not rebuilt would not run: refuse
    except compiled.StaleBuild as err:
        sys.stderr.write(f"outrider: {err}\n")
        return 2
    code: int = args.func(args)
    return code
