"""The sub-commands behind `outrider ...` (argument parsing lives in proxy.cli).

Each returns the process exit code: 0 ok, 2 bad input (config problems, bad flags).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from proxy import loop
from proxy.logs import setup_logging
from proxy.progress import Bar, tracked

if TYPE_CHECKING:
    from experiments.model import Experiment
    from proxy.filters.auth import AuthSettings
    from proxy.filters.ratelimit import RateLimitSettings
    from proxy.settings import Settings
    from proxy.settings_model import SidecarFile


def parse_hostport(value: str, flag: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` → (host, port); SystemExit(2) with a clear message otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        print(f"outrider: {flag} {value!r}: expected HOST:PORT", file=sys.stderr)
        raise SystemExit(2)
    return host, int(port)


def admin_token(path: str | None) -> str | None:
    """The token from `--admin-token-file`, else $OUTRIDER_ADMIN_TOKEN, else None (mutations refused)."""
    if path is not None:
        token = Path(path).read_text().strip()
        if not token:
            print(f"outrider: --admin-token-file {path} is empty", file=sys.stderr)
            raise SystemExit(2)
        return token
    return os.environ.get("OUTRIDER_ADMIN_TOKEN") or None


def webhook_settings(url: str | None, secret_file: str | None) -> tuple[str | None, str | None]:
    """(webhook URL, secret read from its file) for Settings; exit 2 when unusable."""
    from proxy.webhook import check_url

    try:
        if url is None and secret_file is not None:
            raise ValueError("--webhook-secret-file needs --webhook-url")
        secret = Path(secret_file).read_text().strip() if secret_file is not None else None
        if secret == "":
            raise ValueError(f"--webhook-secret-file {secret_file} is empty")
        return (check_url(url) if url is not None else None), secret
    except (ValueError, OSError) as err:
        print(f"outrider run: webhook: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def auth_settings(args: argparse.Namespace) -> AuthSettings | None:
    """JWT auth from the --auth-* flags (None when no issuer is given); exit 2 on a bad combination.

    Keys come from exactly one of --auth-keys (a file, read now) and --auth-jwks-url (fetched by the server).
    """
    from proxy.filters.auth import AuthSettings
    from proxy.jwt_keys import KeySet

    if not args.auth_issuer:
        return None
    algorithms = tuple(a.strip() for a in args.auth_algorithms.split(",") if a.strip())
    jwks_url = args.auth_jwks_url or None
    try:
        if not args.auth_audience or bool(args.auth_keys) == bool(jwks_url):
            raise ValueError("--auth-issuer needs --auth-audience and one of --auth-keys or --auth-jwks-url")
        keys = KeySet.from_file(Path(args.auth_keys), algorithms) if args.auth_keys else None
        return AuthSettings(
            algorithms,
            args.auth_issuer,
            args.auth_audience,
            keys,
            leeway_s=args.auth_leeway,
            jwks_url=jwks_url,
            max_token_bytes=args.auth_max_token_bytes,
        )
    except (ValueError, OSError) as err:
        print(f"outrider run: auth: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def rate_limit_settings(args: argparse.Namespace) -> RateLimitSettings | None:
    """GCRA limits from the --rate-* flags (None when --rate-limit is 0), in memory or in a shared Redis;
    exit 2 when invalid."""
    from proxy.filters.ratelimit import RateLimitSettings

    if not args.rate_limit:
        return None
    try:
        return RateLimitSettings(
            args.rate_limit,
            args.rate_burst,
            args.rate_key,
            store=args.rate_store,
            redis_url=args.rate_redis_url,
            on_store_error=args.rate_on_store_error,
            redis_timeout_s=args.rate_redis_timeout,
        )
    except ValueError as err:
        print(f"outrider run: rate limit: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    """`outrider run`: resolve settings, load and check every experiment file, then serve until SIGTERM."""
    from experiments.config import ConfigError, load_experiments
    from proxy.server import serve
    from proxy.settings_load import SettingsError, resolve

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
    return loop.run(serve(sidecar_settings(conf, experiments, files)))


def sidecar_settings(conf: SidecarFile, experiments: list[Experiment], files: list[str]) -> Settings:
    """The server's Settings from validated settings (reads the key and token files; exit 2 if unusable)."""
    from proxy.settings import Settings

    flat = argparse.Namespace(  # the names auth_settings/rate_limit_settings read
        auth_issuer=conf.auth.issuer,
        auth_audience=conf.auth.audience,
        auth_keys=conf.auth.keys,
        auth_jwks_url=conf.auth.jwks_url,
        auth_algorithms=",".join(conf.auth.algorithms),
        auth_leeway=conf.auth.leeway,
        auth_max_token_bytes=conf.auth.max_token_bytes,
        rate_limit=conf.rate_limit.rate,
        rate_burst=conf.rate_limit.burst,
        rate_key=conf.rate_limit.key,
        rate_store=conf.rate_limit.store,
        rate_redis_url=conf.rate_limit.redis_url,
        rate_on_store_error=conf.rate_limit.on_store_error,
        rate_redis_timeout=conf.rate_limit.redis_timeout,
    )
    limits = conf.limits
    hook_url, hook_secret = webhook_settings(conf.webhook.url, conf.webhook.secret_file)
    return Settings(
        experiments=experiments,
        listen=parse_hostport(conf.listen, "--listen"),
        admin=parse_hostport(conf.admin, "--admin"),
        data_dir=Path(conf.data_dir),
        default_upstream=conf.default_upstream,
        max_body_bytes=limits.max_body_bytes,
        config_files=files,
        admin_token=admin_token(conf.admin_token_file),
        auth=auth_settings(flat),
        rate_limit=rate_limit_settings(flat),
        header_timeout_s=limits.header_timeout,
        body_min_rate=limits.body_min_rate,
        max_connections=limits.max_connections,
        keepalive_s=limits.keepalive,
        trusted_proxies=tuple(conf.trusted_proxies),
        retry_budget=conf.retries.budget,
        retry_min=conf.retries.min,
        drain_delay_s=conf.drain.delay,
        shutdown_timeout_s=conf.drain.timeout,
        reload_interval_s=conf.reload.interval,
        webhook_url=hook_url,
        webhook_secret=hook_secret,
    )


def cmd_validate(args: argparse.Namespace) -> int:
    """`outrider validate FILE...`: every problem as FILE:LINE:COL: path: message; exit 2 if any."""
    from experiments.validate import validate_main

    return validate_main(list(args.files), sys.stdout, sys.stderr)


def cmd_schema(_: argparse.Namespace) -> int:
    """`outrider schema`: the JSON Schema of experiment files on stdout."""
    from experiments.validate import schema_main

    return schema_main(sys.stdout)


def cmd_export(args: argparse.Namespace) -> int:
    """`outrider export`: stored outcomes as JSON Lines on stdout, in arrival order."""
    from experiments.sqlite_store import DB_NAME, SqliteOutcomeStore

    path = Path(args.data_dir) / DB_NAME
    if not path.exists():
        print(f"outrider export: no outcome store at {path}", file=sys.stderr)
        return 2
    store = SqliteOutcomeStore(path, readonly=True)
    out = sys.stdout.buffer
    try:
        with Bar("export", total=lambda: store.count(args.experiment)) as bar:
            for raw in store.iter_raw(args.experiment):
                out.write(raw + b"\n")
                bar.advance()
        out.flush()
    except BrokenPipeError:  # `outrider export | head` is fine
        return 0
    finally:
        store.close()
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    """`outrider analyze FILE.jsonl -c EXPERIMENT.yaml [--json]`: the decision the controller would make."""
    from analysis.engine import Judge
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
        result = analyze_records(experiment, records, Judge)
    if args.json:
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY).decode() + "\n")
        return 0
    print_analysis(experiment.name, result)
    return 0


def print_analysis(name: str, result: dict[str, Any]) -> None:
    """The human-readable form of `outrider analyze`."""
    at = result["decided_at"]
    print(f"{name}: {result['decision']}" + (f" at {at} candidate requests" if at is not None else ""))
    for reason in result["reasons"]:
        print(f"  - {reason}")
    srm = result["srm"]
    print(
        f"records: {result['records']}, candidate requests: {result['candidate_requests']}, "
        f"SRM log BF {srm.get('log_bf', 0.0):.2f}{' (MISMATCH)' if srm.get('flagged') else ''}"
    )
    for m in result["metrics"]:
        print(
            f"  {m['name']:<14} estimate {num(m['estimate'])}  CI [{num(m['ci_low'])}, {num(m['ci_high'])}]  "
            f"log e harm {num(m['log_e_harm'])}  non-inferiority {num(m['log_e_noninf'])}"
        )


def num(value: object) -> str:
    """A number for people: 4 significant digits, or — when there is none yet."""
    return f"{value:.4g}" if isinstance(value, int | float) else "—"


def cmd_report(args: argparse.Namespace) -> int:
    """`outrider report --data-dir DIR --experiment NAME -o OUTDIR` or `outrider report --input EXPORT.jsonl
    -c EXPERIMENT.yaml -o OUTDIR`: report.json, report.md and report.html (an export is judged offline, as
    the controller would judge it)."""
    from analysis.engine import Judge
    from analysis.offline import report_from_export, report_from_store
    from experiments.config import ConfigError

    if (args.input is not None) != (args.config is not None) or (args.input and args.data_dir):
        print(
            "outrider report: --input needs -c EXPERIMENT.yaml; --data-dir goes with --experiment",
            file=sys.stderr,
        )
        return 2
    try:
        if args.input is not None:
            paths = report_from_export(Path(args.input), Path(args.config), Path(args.out), Judge)
        else:
            data_dir = Path(args.data_dir or "./outrider-data")
            paths = report_from_store(data_dir, args.experiment, Path(args.out), Judge)
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
    from proxy.demo import run_demo

    setup_logging("warning")
    return loop.run(run_demo(args))
