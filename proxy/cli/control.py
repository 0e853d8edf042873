"""`outrider status` and `outrider promote|rollback|pause|resume NAME`: the admin API from a terminal.

Usage: outrider status -w; outrider rollback digits-canary --token-file /run/secrets/outrider-admin
Exit codes: 0 done; 1 admin API unreachable or answering an unexpected error; 2 bad usage; 3 refused (no or
wrong token, or mutations disabled); 4 no such experiment; 5 the experiment's phase does not allow it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any, TextIO

import aiohttp
import orjson

from analysis.wording import evalue, figure, step_of
from plumbing.http_client import http_session
from proxy.runtime import loop
from proxy.settings.build import admin_token
from proxy.settings.model import SidecarFile

OK, UNREACHABLE, REFUSED, UNKNOWN, CONFLICT = 0, 1, 3, 4, 5
ACTIONS = ("promote", "rollback", "pause", "resume")
CLEAR = "\x1b[H\x1b[2J"
TIMEOUT_S = 5.0


class Failed(Exception):
    """A call that did not do what was asked: the message for people and the exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def add_parsers(sub: Any) -> None:
    """Add `status` and the four control sub-commands to the `outrider` sub-parsers."""
    admin = argparse.ArgumentParser(add_help=False)
    default = f"http://{SidecarFile().admin}"  # the sidecar's default admin port (proxy.settings.model)
    admin.add_argument(
        "--admin",
        default=os.environ.get("OUTRIDER_ADMIN_URL") or default,
        metavar="URL",
        help=f"the sidecar's admin port (default $OUTRIDER_ADMIN_URL or {default})",
    )
    status = sub.add_parser("status", parents=[admin], help="the experiments' live state as a table")
    status.add_argument("name", nargs="?", metavar="NAME", help="one experiment (default: all)")
    status.add_argument("-w", "--watch", action="store_true", help="redraw until Ctrl-C")
    status.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between redraws")
    status.add_argument("--count", type=int, default=None, metavar="N", help="stop after N redraws")
    status.set_defaults(func=cmd_status)
    for action in ACTIONS:
        control = sub.add_parser(
            action, parents=[admin], help=f"{action} an experiment now (needs the token)"
        )
        control.add_argument("name", metavar="NAME")
        control.add_argument(
            "--token-file",
            "--admin-token-file",
            dest="token_file",
            default=None,
            metavar="FILE",
            help="file with the admin bearer token (else $OUTRIDER_ADMIN_TOKEN)",
        )
        control.set_defaults(func=cmd_control, action=action)


def base_url(admin: str) -> str:
    """`127.0.0.1:8081` or `http://127.0.0.1:8081/` → `http://127.0.0.1:8081`."""
    return (admin if "://" in admin else f"http://{admin}").rstrip("/")


async def call(method: str, url: str, token: str | None = None) -> tuple[int, Any]:
    """(status, decoded JSON body) of one admin call; Failed(UNREACHABLE) when there is no answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            http_session(timeout_s=TIMEOUT_S) as session,
            session.request(method, url, headers=headers) as resp,
        ):
            body = await resp.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise Failed(
            UNREACHABLE, f"cannot reach the admin API at {url}: {err or type(err).__name__}"
        ) from None
    try:
        return resp.status, orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        raise Failed(UNREACHABLE, f"{url} answered {resp.status} with a body that is not JSON") from None


def refusal(status: int, doc: Any, what: str) -> Failed:
    """The Failed for a non-2xx answer of the admin API."""
    detail = doc.get("detail", "") if isinstance(doc, dict) else ""
    if status == 401:
        return Failed(REFUSED, f"refused: {detail} (pass --token-file FILE or set $OUTRIDER_ADMIN_TOKEN)")
    if status == 403:
        return Failed(REFUSED, f"refused: {detail}")
    if status == 404:
        return Failed(UNKNOWN, f"no experiment named {what!r}")
    if status == 409:
        return Failed(CONFLICT, f"not allowed now: {detail}")
    return Failed(UNREACHABLE, f"the admin API answered {status}: {detail}")


def cmd_control(args: argparse.Namespace) -> int:
    """`outrider promote|rollback|pause|resume NAME`: print the new state; exit codes in the module doc."""
    try:
        token = admin_token(args.token_file)
    except OSError as err:
        print(f"outrider {args.action}: --token-file: {err}", file=sys.stderr)
        return 2
    url = f"{base_url(args.admin)}/experiments/{args.name}/{args.action}"
    try:
        status, doc = loop.run(call("POST", url, token))
        if status != 200:
            raise refusal(status, doc, args.name)
    except Failed as failed:
        print(f"outrider {args.action}: {failed}", file=sys.stderr)
        return failed.code
    print(
        f"{args.name}: {doc['phase']} (step {step_text(doc)}; {weights_text(doc['weights'])}; "
        f"v{doc['version']})"
    )
    return OK


def cmd_status(args: argparse.Namespace) -> int:
    """`outrider status [-w] [NAME]`: the table once, or redrawn every --interval seconds."""
    try:
        return loop.run(watch(args, sys.stdout) if args.watch else frame(args, sys.stdout))
    except KeyboardInterrupt:  # Ctrl-C is how a watch ends
        return OK


async def frame(args: argparse.Namespace, out: TextIO) -> int:
    """Print the table once; the exit code."""
    base = base_url(args.admin)
    try:
        url = f"{base}/experiments/{args.name}" if args.name else f"{base}/experiments"
        status, doc = await call("GET", url)
        if status != 200:
            raise refusal(status, doc, args.name or "")
    except Failed as failed:
        print(f"outrider status: {failed}", file=sys.stderr)
        return failed.code
    out.write(status_table([doc] if args.name else doc["experiments"]))
    out.flush()
    return OK


async def watch(args: argparse.Namespace, out: TextIO) -> int:
    """Redraw every --interval seconds until Ctrl-C or --count frames; an unreachable sidecar is shown, and
    the watch goes on (it may be restarting)."""
    code, drawn = OK, 0
    while args.count is None or drawn < args.count:
        if drawn:
            await asyncio.sleep(args.interval)
        header = f"outrider status · {base_url(args.admin)} · {time.strftime('%H:%M:%S')}\n\n"
        out.write((CLEAR if out.isatty() else "\n") + header)
        code = await frame(args, out)
        drawn += 1
    return code


def weights_text(weights: dict[str, float]) -> str:
    """`stable 90%, candidate 10%`."""
    return ", ".join(f"{name} {share:g}%" for name, share in weights.items()) or "—"


def step_text(doc: dict[str, Any]) -> str:
    """`2/4` for a canary (1-based), `—` for other strategies."""
    return step_of(doc.get("step"), doc.get("strategy", {}).get("steps"))


def requests_text(doc: dict[str, Any]) -> str:
    """`stable 1020 (3 5xx), candidate 117` from the requests the sidecar answered per variant."""
    parts = []
    for variant, count in sorted((doc.get("requests") or {}).items()):
        errors = f" ({count['errors']} 5xx)" if count.get("errors") else ""
        parts.append(f"{variant} {count['total']}{errors}")
    return ", ".join(parts) or "0"


def decision_text(doc: dict[str, Any]) -> str:
    """The last change of the experiment: the controller's decision, or the manual action."""
    history = [h for h in (doc.get("state") or {}).get("history") or [] if h.get("reason") != "created"]
    if not history:
        return "—"  # only its creation so far
    last = history[-1]
    return str(last.get("decision") or last.get("reason") or "—")[:40]


def look_text(doc: dict[str, Any]) -> str:
    """`CONTINUE @ 1300 records (units 120/1100)` from the controller's last look."""
    look = doc.get("analysis")
    if not look:
        return "—"
    snap = look.get("snapshot") or {}
    units = snap.get("units") if snap.get("unit_of_analysis") == "unit" else None
    per_unit = f" (units {units.get('candidate')}/{units.get('stable')})" if isinstance(units, dict) else ""
    return f"{look['kind']} @ {look['records']} records{per_unit}"


def evidence_lines(doc: dict[str, Any]) -> list[str]:
    """One line per judged metric of the last look: estimate, CI and the e-values against their thresholds."""
    look, limits = doc.get("analysis") or {}, doc.get("thresholds") or {}
    out = []
    for metric in (look.get("snapshot") or {}).get("metrics", []):
        harm, noninf = e_value(metric.get("log_e_harm")), e_value(metric.get("log_e_noninf"))
        out.append(
            f"    {metric['name']:<16} estimate {num(metric.get('estimate'))} "
            f"bounds [{num(metric.get('ci_low'))} harm, {num(metric.get('ci_high'))} pass]  "
            f"e harm {harm} / {num(limits.get('harm'))}  e pass {noninf} / {num(limits.get('pass'))}"
        )
    return out


e_value = evalue
num = figure


def status_table(experiments: list[dict[str, Any]]) -> str:
    """The experiments as an aligned table, each followed by the evidence of its last look."""
    head = ("EXPERIMENT", "PHASE", "STEP", "WEIGHTS", "REQUESTS", "LAST DECISION", "LAST LOOK")
    rows = [
        (
            doc["name"],
            doc["phase"],
            step_text(doc),
            weights_text(doc["weights"]),
            requests_text(doc),
            decision_text(doc),
            look_text(doc),
        )
        for doc in experiments
    ]
    widths = [max(len(row[i]) for row in (head, *rows)) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(head, widths, strict=True)).rstrip()]
    for doc, row in zip(experiments, rows, strict=True):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        lines += evidence_lines(doc)
    if not experiments:
        lines.append("(no experiments)")
    return "\n".join(lines) + "\n"
