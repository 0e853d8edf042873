"""`GET /dashboard` on the admin port: one self-contained page that polls `/experiments` every second.

Usage: app.router.add_get("/dashboard", dashboard)
The page (`dashboard.html`, read once at import) has no external assets. Its inline style and script are
allowed by a per-response CSP nonce and nothing else; it renders data only through `textContent`, and the
admin token lives in the tab's `sessionStorage`, sent only as `Authorization: Bearer` on the buttons' POSTs.
"""

from __future__ import annotations

import secrets
from importlib.resources import files

from aiohttp import web

TEMPLATE = files("proxy.admin").joinpath("dashboard.html").read_text(encoding="utf-8")
NONCE_MARK = "{{NONCE}}"


def policy(nonce: str) -> str:
    """The Content-Security-Policy: same-origin fetches, the nonce's inline code, nothing else."""
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "connect-src 'self'",
            "img-src data:",  # the empty favicon, so the browser does not fetch /favicon.ico
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


async def dashboard(_: web.Request) -> web.Response:
    """The page with a fresh nonce: a fixed one, readable in any earlier response, would let markup in."""
    nonce = secrets.token_urlsafe(18)
    return web.Response(
        text=TEMPLATE.replace(NONCE_MARK, nonce),
        content_type="text/html",
        headers={
            "Content-Security-Policy": policy(nonce),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )
