"""`outrider load URL`: the demo's traffic against any outrider — sticky users posting labelled digits —
bounded in time and count, then what the users saw per variant.

Usage: outrider load http://127.0.0.1:8080/v2/models/digits/infer --users 5000 --seconds 60
For trying an experiment by hand: a decision needs enough exposure on every arm (see the README), which a
few curls never give.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelserver.testset import read_test_set
from proxy.demo.load import Load, Tally, drive
from proxy.demo.report import print_variants

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def add_parser(sub: Any) -> None:
    """Add `load` to the `outrider` sub-parsers."""
    load = sub.add_parser("load", help="sticky users posting labelled digits to an outrider (bounded)")
    load.add_argument(
        "url", metavar="URL", help="the infer URL, e.g. http://127.0.0.1:8080/v2/models/digits/infer"
    )
    load.add_argument("--users", type=int, default=5000, help="distinct users (sticky units, x-user-id)")
    load.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    load.add_argument("--seconds", type=float, default=30.0, help="stop after this long")
    load.add_argument("--requests", type=int, default=100_000, help="stop after this many requests")
    load.add_argument("--test-set", type=Path, default=Path("models/test_set.json"), help="labelled digits")
    load.add_argument(
        "--any-host",
        action="store_true",
        help="allow a URL that is not on this host (default: loopback only)",
    )
    load.set_defaults(func=cmd_load)


def cmd_load(args: argparse.Namespace) -> int:
    """Send, then print the per-variant table; exit 1 if nothing was answered."""
    host = urlsplit(args.url).hostname or ""
    if host not in LOOPBACK and not args.any_host:
        print(f"outrider load: {host!r} is not this host; pass --any-host to send to it", file=sys.stderr)
        return 2
    for name in ("users", "concurrency", "requests"):
        if getattr(args, name) < 1:
            print(f"outrider load: --{name} must be ≥ 1", file=sys.stderr)
            return 2
    if not args.seconds > 0:
        print("outrider load: --seconds must be > 0", file=sys.stderr)
        return 2
    try:
        test_set = read_test_set(args.test_set)
    except OSError as err:
        print(f"outrider load: cannot read the test set: {err} (make models writes it)", file=sys.stderr)
        return 2
    load = Load(args.users, args.concurrency, args.requests, args.seconds)
    tally = Tally()

    async def run() -> float:
        return await drive(args.url, test_set, load, asyncio.Event(), tally)

    elapsed = asyncio.run(run())
    print_variants(tally, elapsed)
    return 0 if tally.total else 1
