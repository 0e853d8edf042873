"""Browser fixtures: Debian's chromium driven by playwright, pages that collect their console errors and
leave a screenshot behind, plus the whole-process fixtures of tests/integration.

Usage (a test module): `pytestmark = pytest.mark.asyncio(loop_scope="session")`, then
`async def test_x(outrider: OutriderFactory, page: Watched) -> None: await page.page.goto(url)`
The browser is `make browser-deps`'s /usr/bin/chromium — never one that `playwright install` downloads.
Screenshots go to `$OUTRIDER_ARTIFACTS` (default `tests-artifacts/` in the repo, git-ignored).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Error, Page, ViewportSize, async_playwright

from tests.conftest import REPO
from tests.integration.conftest import outrider, upstreams

# outrider and upstreams: the integration fixtures, re-exported for the tests here
__all__ = ["Watched", "browser", "chromium", "outrider", "page", "upstreams"]

CHROMIUM = Path("/usr/bin/chromium")
# Quiet, offline, deterministic: no sandbox (containers), no GPU, no background fetches to Google.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}


def artifacts_dir() -> Path:
    """Where screenshots of this run go (created on demand)."""
    out = Path(os.environ.get("OUTRIDER_ARTIFACTS") or REPO / "tests-artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class Watched:
    """A page and every console error or uncaught exception it has had so far."""

    page: Page
    name: str
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        """Keep console errors (a CSP violation, a failed fetch and an exception all log one)."""
        if message.type == "error":
            self.errors.append(f"console: {message.text} at {message.location}")

    def on_page_error(self, error: Error) -> None:
        """Keep uncaught exceptions."""
        self.errors.append(f"page error: {error}")

    async def screenshot(self, suffix: str = "", full_page: bool = True) -> Path:
        """Save the page as `<test name><suffix>.png` in the artifacts directory."""
        path = artifacts_dir() / f"{self.name}{suffix}.png"
        await self.page.screenshot(path=path, full_page=full_page)
        return path


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, which the project's test setup installs (a missing browser fails, never skips)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium")
    return CHROMIUM


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """One headless chromium for the whole run."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Watched]:
    """A fresh context and page (1280 px wide); screenshot on the way out, then closed.

    Ask for it after the fixtures that start servers, so it is torn down (and photographed) before them.
    """
    context = await browser.new_context(viewport=VIEWPORT)
    watched = Watched(await context.new_page(), re.sub(r"[^\w.-]+", "_", request.node.name))
    watched.page.on("console", watched.on_console)
    watched.page.on("pageerror", watched.on_page_error)
    yield watched
    try:
        await watched.screenshot()
    finally:
        await context.close()
