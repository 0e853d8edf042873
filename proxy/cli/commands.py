"""The sub-commands behind `outrider ...` (argument parsing lives in proxy.cli).

Each returns the process exit code: 0 ok, 2 bad input (config problems, bad flags).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from analysis.wording import evalue, figure
from proxy.cli.progress import Bar, tracked
from proxy.runtime import loop
from proxy.telemetry.logs import setup_logging

if TYPE_CHECKING:
    pass


def cmd_run(args: argparse.Namespace) -> int:
    """`outrider run`: resolve settings, load and check every experiment file, then serve until SIGTERM (with
    `--workers N` > 1, supervise N workers: proxy.fleet)."""
    from experiments.config import ConfigError, load_experiments
    from proxy.runtime.startup import serve
    from proxy.settings.build import sidecar_settings
    from proxy.settings.load import SettingsError, resolve

    try:
        resolved = resolve(args.settings, vars(args), os.environ)
    except SettingsError as err:
        print(err, file=sys.stderr)
        return 2
    conf = resolved.settings
    setup_logging(conf.log_level)
    files = [*resolved.experiment_files, *args.config]
    try:
        experiments = load_experiments(files)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 2
    settings = sidecar_settings(conf, experiments, files)
    if args.worker_of is not None:  # started by a supervisor (proxy.fleet)
        from proxy.fleet.worker import WorkerLink

        return loop.run(serve(settings, WorkerLink(args.worker_of, args.worker_index)))
    if settings.conf.workers > 1:
        from proxy.fleet.supervisor import supervise

        return loop.run(supervise(settings, getattr(args, "argv", sys.argv[1:])))
    return loop.run(serve(settings))


def cmd_validate(args: argparse.Namespace) -> int:
    """`outrider validate FILE...`: every problem as FILE:LINE:COL: path: message; exit 2 if any."""
    from experiments.validate import validate_main

    return validate_main(list(args.files), sys.stdout, sys.stderr)


def cmd_schema(_: argparse.Namespace) -> int:
    """`outrider schema`: the JSON Schema of experiment files on stdout."""
    from experiments.validate import schema_main

    return schema_main(sys.stdout)


def cmd_export(args: argparse.Namespace) -> int:
    """`outrider export`: stored outcomes as JSON Lines on stdout, in arrival order (in each experiment's
    stream order with `--store redis://…`)."""
    from redis.exceptions import RedisError

    from experiments.sqlite_store import DB_NAME
    from experiments.stores import check_store, is_redis, open_outcomes

    where = args.store or "sqlite"
    try:
        check_store(where)
    except ValueError as err:
        print(f"outrider export: --store: {err}", file=sys.stderr)
        return 2
    path = Path(args.data_dir) / DB_NAME
    if not is_redis(where) and not path.exists():
        print(f"outrider export: no outcome store at {path}", file=sys.stderr)
        return 2
    store = open_outcomes(where, Path(args.data_dir), readonly=True)
    out = sys.stdout.buffer
    try:
        with Bar("export", total=lambda: store.count(args.experiment)) as bar:
            for raw in store.iter_raw(args.experiment):
                out.write(raw + b"\n")
                bar.advance()
        out.flush()
    except BrokenPipeError:  # `outrider export | head` is fine
        return 0
    except RedisError as err:
        print(f"outrider export: cannot read {where}: {err}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """`outrider analyze FILE.jsonl -c EXPERIMENT.yaml [--json]`: the decision the controller would make."""
    from analysis.comparisons import judge_for
    from analysis.offline import analyze_records, parse_jsonl
    from experiments.config import ConfigError, load_experiment

    try:
        experiment = load_experiment(args.config)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 2
    try:
        if args.input == "-":
            with Bar("reading", unit="bytes") as bar:
                records = parse_jsonl(tracked(sys.stdin.buffer, bar), experiment.name, "<stdin>")
        else:
            with (
                open(args.input, "rb") as fh,
                Bar("reading", os.fstat(fh.fileno()).st_size, unit="bytes") as bar,
            ):
                records = parse_jsonl(tracked(fh, bar), experiment.name, args.input)
    except (OSError, ValueError) as err:
        print(f"outrider analyze: {err}", file=sys.stderr)
        return 2
    with Bar(f"judging {len(records):,} records", unit=""):
        result = analyze_records(experiment, records, judge_for)
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
        return 0
    from proxy.admin.api import thresholds_json

    print_analysis(experiment.name, result, thresholds_json(experiment))
    return 0


def print_analysis(name: str, result: dict[str, Any], limits: Mapping[str, float] | None = None) -> None:
    """The human-readable form of `outrider analyze` (`limits`: the e-value thresholds, harm and pass)."""
    limits = limits or {}
    at = result["decided_at"]
    print(f"{name}: {result['decision']}" + (f" at {at} candidate requests" if at is not None else ""))
    for reason in result["reasons"]:
        print(f"  - {reason}")
    srm = result["srm"]
    print(
        f"records: {result['records']}, candidate requests: {result['candidate_requests']}, "
        f"SRM log BF {srm.get('log_bf', 0.0):.2f}{' (MISMATCH)' if srm.get('flagged') else ''}"
    )
    units = result.get("units")
    if result.get("unit_of_analysis") == "unit" and isinstance(units, dict):
        stable, candidate = units.get("stable"), units.get("candidate")
        print(f"unit of analysis: unit; units stable {stable}, candidate {candidate}")
    for m in result["metrics"]:
        print(
            f"  {m['name']:<14} estimate {num(m['estimate'])}  lower bound {num(m['ci_low'])} "
            f"(harm margin {num(m.get('harm_margin'))})  upper bound {num(m['ci_high'])} "
            f"(margin {num(m.get('margin'))})  e harm {evalue(m['log_e_harm'])} / {num(limits.get('harm'))}  "
            f"e pass {evalue(m['log_e_noninf'])} / {num(limits.get('pass'))}"
        )


num = figure


def cmd_report(args: argparse.Namespace) -> int:
    """`outrider report --data-dir DIR --experiment NAME -o OUTDIR` or `outrider report --input EXPORT.jsonl
    -c EXPERIMENT.yaml -o OUTDIR`: report.json, report.md and report.html (an export is judged offline, as
    the controller would judge it)."""
    from analysis.comparisons import judge_for
    from analysis.offline import report_from_export, report_from_store
    from experiments.config import ConfigError
    from proxy.settings.model import SidecarFile

    if (args.input is not None) != (args.config is not None) or (args.input and args.data_dir):
        print(
            "outrider report: --input needs -c EXPERIMENT.yaml; --data-dir goes with --experiment",
            file=sys.stderr,
        )
        return 2
    try:
        if args.input is not None:
            paths = report_from_export(Path(args.input), Path(args.config), Path(args.out), judge_for)
        else:
            data_dir = Path(args.data_dir or SidecarFile().data_dir)
            paths = report_from_store(data_dir, args.experiment, Path(args.out), judge_for)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 2
    except (LookupError, OSError, ValueError) as err:
        print(f"outrider report: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`outrider demo`: model servers + outrider + many users; prints the split and stops everything."""
    from proxy.demo.scenarios import run_demo

    setup_logging("warning")
    return loop.run(run_demo(args))
