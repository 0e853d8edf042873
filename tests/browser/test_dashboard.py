"""The live dashboard in a real browser against a real outrider: it shows each experiment and its request
counts, a state change made elsewhere appears within 2 s, a promote click without the admin token is refused
and changes nothing, and with the token typed in it promotes — with no console error at any point."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Dialog, Locator, expect

from tests.browser.conftest import Watched
from tests.integration.conftest import OutriderFactory, canary_yaml
from tests.support.procs import Proc

pytestmark = pytest.mark.asyncio(loop_scope="session")

TOKEN = "dashboard-admin-token"
# A valid path prefix (no whitespace, ? or #) that would run script if the page ever parsed data as HTML.
MARKUP = "/x/<img/src=x/onerror=window.pwned=1>"
DECISION_BUDGET_S = 2.0


async def state_of(session: aiohttp.ClientSession, proxy: Proc, name: str) -> dict[str, Any]:
    """The experiment as the admin API reports it."""
    async with session.get(f"{proxy.admin_url}/experiments/{name}") as r:
        assert r.status == 200
        data: dict[str, Any] = await r.json()
    return data


async def shown_requests(card: Locator) -> int:
    """Sum of the "N req" figures on a card's weight bars."""
    texts = await card.locator(".row .num").all_text_contents()
    return sum(int(m.group(1)) for t in texts if (m := re.search(r"(\d+) req", t)))


async def accept(dialog: Dialog) -> None:
    """Confirm the irreversible-action prompt, as an operator would."""
    await dialog.accept()


async def nonce_of(session: aiohttp.ClientSession, proxy: Proc) -> str:
    """The CSP nonce of one /dashboard response, checked to be the one its style and script carry."""
    async with session.get(f"{proxy.admin_url}/dashboard") as r:
        html = await r.text()
        found = re.search(r"'nonce-([\w-]+)'", r.headers["Content-Security-Policy"])
    assert found is not None
    assert html.count(f'nonce="{found.group(1)}"') == 2
    return found.group(1)


def start_three(upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path) -> Proc:
    """outrider with an admin token and three canaries: `split` on /v2, `other` on /v3, `markup` on MARKUP."""
    stable, candidate = upstreams
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    return outrider(
        canary_yaml(stable.url, candidate.url),
        canary_yaml(stable.url, candidate.url, name="other", prefix="/v3"),
        canary_yaml(stable.url, candidate.url, name="markup", prefix=MARKUP),
        args=("--admin-token-file", str(token_file)),
    )


async def test_dashboard_follows_decisions_and_needs_the_token(
    upstreams: tuple[Proc, Proc], outrider: OutriderFactory, tmp_path: Path, page: Watched
) -> None:
    proxy = start_three(upstreams, outrider, tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as session:
        for i in range(30):
            async with session.post(f"{proxy.url}/v2/x", data=b"{}", headers={"x-user-id": f"u{i}"}) as r:
                assert r.status == 200

        response = await page.page.goto(f"{proxy.admin_url}/dashboard")
        assert response is not None
        assert response.status == 200
        csp = response.headers["content-security-policy"]
        assert "'unsafe-inline'" not in csp
        assert re.search(r"script-src 'nonce-[\w-]{20,}'", csp), csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert await nonce_of(session, proxy) != await nonce_of(session, proxy)
        split, other = (page.page.locator(f'[data-experiment="{n}"]') for n in ("split", "other"))
        await expect(split).to_have_attribute("data-phase", "progressing")
        await expect(other).to_have_attribute("data-phase", "progressing")
        await expect(split.locator(".meta")).to_contain_text("canary 10 → 25 → 50 %")
        assert await shown_requests(split) == 30
        assert await shown_requests(other) == 0
        await expect(page.page.locator('[data-experiment="markup"] .meta')).to_contain_text(MARKUP)
        assert await page.page.locator("img").count() == 0
        assert await page.page.evaluate("window.pwned") is None

        # A decision taken elsewhere (here the API; the controller goes through the same state) shows up fast.
        async with session.post(f"{proxy.admin_url}/experiments/split/rollback", headers=auth) as r:
            assert r.status == 200
        posted = time.monotonic()
        await page.page.wait_for_function(
            "() => document.querySelector('[data-experiment=\"split\"]').dataset.phase === 'rolled_back'",
            polling=20,
            timeout=DECISION_BUDGET_S * 1000,
        )
        seen_after = time.monotonic() - posted
        assert seen_after <= DECISION_BUDGET_S
        await expect(split.locator("ol.history li").first).to_contain_text("manual rollback (admin API)")
        print(f"dashboard showed the rollback {seen_after * 1000:.0f} ms after the POST returned")

        # Without a token the click is refused, the page says so, and nothing changes.
        before = await state_of(session, proxy, "other")
        page.page.once("dialog", accept)
        await other.locator("button[data-action=promote]").click()
        await expect(other.locator(".message")).to_have_text(re.compile(r"^refused \(401\): .*admin token"))
        after = await state_of(session, proxy, "other")
        assert (after["phase"], after["version"]) == (before["phase"], before["version"])

        # With the token typed in, the same click promotes; the token stays out of the URL.
        await page.page.fill("#token", TOKEN)
        page.page.once("dialog", accept)
        await other.locator("button[data-action=promote]").click()
        await expect(other.locator(".message")).to_have_text(re.compile(r"^promote done: now promoted"))
        await expect(other).to_have_attribute("data-phase", "promoted")
        assert (await state_of(session, proxy, "other"))["phase"] == "promoted"
        assert TOKEN not in page.page.url
        assert await page.page.evaluate("sessionStorage.getItem('outrider-admin-token')") == TOKEN
    # Chromium logs each 4xx fetch as "Failed to load resource": the refused click's 401 is the only one.
    refused = [e for e in page.errors if "status of 401" in e and "/experiments/other/promote" in e]
    assert len(refused) == 1, page.errors
    assert [e for e in page.errors if e not in refused] == []
