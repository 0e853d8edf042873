"""A small, real upstream for tests: `python -m tests.support.upstream --port 0 [--name NAME]`.

Path segments anywhere in the path trigger faults:
  .../reset/...     closes the connection without answering (a reset as the proxy sees it)
  .../sleep/MS/...  answers after MS milliseconds
  .../status/N/...  answers with status N
  PUT /__fail_permille/N  from then on, answers 500 to the users (x-user-id) whose hash mod 1000 is below N
  every answer echoes: {"name", "method", "path", "headers": [[k, v], ...], "body_len", "body_sha256"}
  (the body as received: the server does not decompress, so a gzip body is hashed as sent)
`--fault hang|500|garbage|reset|slow-body` breaks every request of the process (a broken shadow).
Every answer carries hop-by-hop headers that a proxy must strip (Connection names X-Upstream-Secret) and
`x-upstream-name`. Logs the `listening` line of tests/support/procs.py.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import zlib

import orjson
from aiohttp import web

FAULTS = ("none", "hang", "500", "garbage", "reset", "slow-body")


async def faulty(request: web.Request, fault: str) -> web.StreamResponse | None:
    """Apply a whole-process fault (for shadows); None means answer normally."""
    if fault == "hang":
        await asyncio.sleep(3600)  # the subject: a shadow that never answers
    if fault == "500":
        return web.Response(status=500, text="shadow is broken")
    if fault == "garbage":
        return web.Response(status=200, body=b"\x00\xffnot json at all{{{", content_type="application/json")
    if fault == "reset":
        assert request.transport is not None
        request.transport.abort()
        await asyncio.sleep(3600)  # the handler is cancelled when the transport goes away
    if fault == "slow-body":
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.content_length = 100
        await resp.prepare(request)
        for _ in range(100):
            await resp.write(b" ")
            await asyncio.sleep(0.05)
        return resp
    return None


def make_app(name: str, fault: str = "none") -> web.Application:
    """The echo application."""
    failing = {"permille": 0}

    async def set_failing(request: web.Request) -> web.StreamResponse:
        failing["permille"] = int(request.match_info["n"])
        return web.Response(text="ok")

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        broken = await faulty(request, fault)
        if broken is not None:
            return broken
        user = request.headers.get("x-user-id", "").encode()
        if failing["permille"] and zlib.crc32(user) % 1000 < failing["permille"]:
            return web.Response(status=500, text="this user's requests fail")
        segments = request.path.split("/")
        if "reset" in segments:
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(3600)  # the handler is cancelled when the transport goes away
        if "sleep" in segments:
            # the subject: /sleep/N answers N ms late
            await asyncio.sleep(int(segments[segments.index("sleep") + 1]) / 1000)
        status = int(segments[segments.index("status") + 1]) if "status" in segments else 200
        payload = {
            "name": name,
            "method": request.method,
            "path": request.path_qs,
            "headers": [[k, v] for k, v in request.headers.items()],
            "body_len": len(body),
            "body_sha256": hashlib.sha256(body).hexdigest(),
        }
        headers = {
            "Connection": "keep-alive, X-Upstream-Secret",
            "X-Upstream-Secret": "must-not-cross",
            "Keep-Alive": "timeout=5",
            "Proxy-Authenticate": "Basic",
            "Trailer": "X-Checksum",
            "Upgrade": "h2c",
            "X-Upstream-Name": name,
        }
        return web.Response(
            status=status, body=orjson.dumps(payload), headers=headers, content_type="application/json"
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("PUT", r"/__fail_permille/{n:\d+}", set_failing)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def serve(app: web.Application, port: int, service: str) -> None:
    """Serve `app` on 127.0.0.1:`port` (bodies as received, never decompressed), log the `listening` line
    as `service`, and run until killed."""
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    host, bound = runner.addresses[0][:2]
    sys.stderr.write(
        orjson.dumps({"event": "listening", "service": service, "address": f"{host}:{bound}"}).decode() + "\n"
    )
    sys.stderr.flush()
    await asyncio.Event().wait()


async def main(port: int, name: str, fault: str) -> None:
    """Serve until killed."""
    await serve(make_app(name, fault), port, "upstream")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default="upstream")
    parser.add_argument("--fault", default="none", choices=FAULTS, help="answer every request this way")
    ns = parser.parse_args()
    asyncio.run(main(ns.port, ns.name, ns.fault))
