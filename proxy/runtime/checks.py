"""Start-up facts the sidecar must not run without: aiohttp's C HTTP parser and a current aiohttp.

Usage: facts = runtime_facts(); problems = runtime_problems(facts)
The pure-Python parser is slower and has had its own request-smuggling advisories (docs/reliability.md), so
outrider refuses to start on it unless explicitly allowed (AIOHTTP_NO_EXTENSIONS is the usual cause).
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import http_parser, web_protocol

MIN_AIOHTTP = (3, 14, 3)


def runtime_facts() -> dict[str, str]:
    """Which HTTP parser the server uses, the aiohttp version and the event loop class."""
    c_parser = getattr(http_parser, "HttpRequestParserC", None)
    in_use = vars(web_protocol)["HttpRequestParser"]  # what the server protocol actually instantiates
    parser = "c" if c_parser is not None and in_use is c_parser else "python"
    try:
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    except RuntimeError:
        loop = "none"
    return {"http_parser": parser, "aiohttp": aiohttp.__version__, "loop": loop}


def version_tuple(version: str) -> tuple[int, ...]:
    """`3.14.5` → (3, 14, 5); stops at the first non-numeric part."""
    parts: list[int] = []
    for piece in version.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def runtime_problems(facts: dict[str, str]) -> list[str]:
    """Reasons not to serve traffic; empty when all is well."""
    problems: list[str] = []
    if facts["http_parser"] != "c":
        problems.append("aiohttp is using its pure-Python HTTP parser (is AIOHTTP_NO_EXTENSIONS set?)")
    if version_tuple(facts["aiohttp"]) < MIN_AIOHTTP:
        problems.append(f"aiohttp {facts['aiohttp']} is older than 3.14.3 (request-smuggling fixes)")
    return problems
